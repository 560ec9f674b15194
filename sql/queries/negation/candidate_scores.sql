-- negation/candidate_scores: the candidates' score rows (the registered table `incoming`, ScoreResult
-- fields) into `scores`, as batch 'candidates'. Run by pipelines/negation_sets.py apply_rule on the scratch
-- in-memory warehouse.
INSERT INTO scores
SELECT generation_id, scorer, scorer_version, model_sha256, metric, value, details, 'candidates', current_timestamp
FROM incoming;
