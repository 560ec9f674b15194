-- meta_run_generations: each run's generations at the last refresh (a run that lost images recomputes them).
CREATE TABLE IF NOT EXISTS meta.run_generations (run_id VARCHAR NOT NULL, generation_id VARCHAR NOT NULL)
