-- load/mark_loaded: stamp run $2 loaded at $1 (status planned -> loaded; a validated status is kept).
-- Run by pipelines/load.py load_run once every batch of the run is in.
UPDATE runs SET loaded_at = $1, status = CASE WHEN status = 'planned' THEN 'loaded' ELSE status END
WHERE run_id = $2;
