-- refresh_runs: runs whose staging rows changed, plus every run holding a refreshed generation as an image
-- or as a baseline.
CREATE OR REPLACE TEMP TABLE refresh_runs AS
SELECT run_id FROM temp.changed_sources
UNION
SELECT run_id FROM stg_generations
WHERE generation_id IN (SELECT generation_id FROM temp.refresh_generations)
   OR baseline_generation_id IN (SELECT generation_id FROM temp.refresh_generations)
