-- dashboard/runs: every run of the warehouse (mart_runs), oldest first.
-- grain: one row per run. Read by dashboards/queries.py runs (the run picker, the runs page).
SELECT * FROM mart_runs ORDER BY planned_at, run_id;
