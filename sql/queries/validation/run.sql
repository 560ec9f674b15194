-- validation/run: one run's planned against loaded totals (runs, generations, batches).
-- grain: one row for run $1 (none when unknown). Read by pipelines/expectations/frames.py (frame `run`).
SELECT r.run_id, r.n_expected, r.n_batches, r.status, r.loaded_at IS NOT NULL AS marked_loaded,
       (SELECT count(*) FROM generations WHERE run_id = $1) AS n_generations,
       (SELECT count(*) FROM batches WHERE run_id = $1) AS n_batches_loaded
FROM runs r WHERE r.run_id = $1;
