-- refresh_run_images: the images of the refreshed runs and their baselines.
CREATE OR REPLACE TEMP TABLE refresh_run_images AS
SELECT generation_id FROM stg_generations WHERE run_id IN (SELECT run_id FROM temp.refresh_runs)
UNION
SELECT baseline_generation_id FROM stg_generations
WHERE run_id IN (SELECT run_id FROM temp.refresh_runs) AND baseline_generation_id IS NOT NULL
