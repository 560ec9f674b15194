-- report/run: the mart_runs row of one run (what the report's heading says about it).
-- grain: at most one row, for run $1. Read by pipelines/report.py build_report.
SELECT * FROM mart_runs WHERE run_id = $1;
