-- validation/run_spec: the stored run spec (JSON) of one run ($1). grain: at most one row.
-- Read by pipelines/expectations/frames.py Frames (what the run planned).
SELECT spec_json FROM runs WHERE run_id = $1;
