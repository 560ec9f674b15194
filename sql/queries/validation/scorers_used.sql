-- validation/scorers_used: per scorer, how many distinct model sha256s the current-version score rows of
-- one run's ($1) images carry (1 = consistent). grain: one row per scorer. Reads the registered
-- `cur_versions`. Read by pipelines/expectations/frames.py (frame `scorers`).
SELECT s.scorer, count(DISTINCT coalesce(s.model_sha256, ''))
FROM scores s JOIN (SELECT DISTINCT generation_id FROM generations WHERE run_id = $1) g
     USING (generation_id)
JOIN cur_versions USING (scorer, scorer_version) GROUP BY s.scorer;
