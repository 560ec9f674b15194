-- validation/scorers_written: per scorer, the versions and model sha256s of the score rows that one run's
-- ($1) own batches wrote, and how many rows. grain: one row per scorer.
-- Read by pipelines/expectations/frames.py (frame `scorers`).
SELECT s.scorer, list(DISTINCT s.scorer_version ORDER BY s.scorer_version),
       list(DISTINCT coalesce(s.model_sha256, '') ORDER BY coalesce(s.model_sha256, '')), count(*)
FROM scores s WHERE s.batch_id IN (SELECT batch_id FROM batches WHERE run_id = $1)
GROUP BY s.scorer;
