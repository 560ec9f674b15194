-- load/delete_run_prompts: drop one run's ($1) prompt rows before they are written again from its plan.
-- Run by pipelines/load.py load_run (inside the run's transaction).
DELETE FROM run_prompts WHERE run_id = $1;
