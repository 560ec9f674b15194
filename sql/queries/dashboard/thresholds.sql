-- dashboard/thresholds: the thresholds mart_threshold_sweep holds for one run ($1) and one-clause rule ($2).
-- grain: one row per threshold, ascending (none for a rule of several clauses).
-- Read by dashboards/queries.py thresholds (the threshold slider).
SELECT DISTINCT threshold FROM mart_threshold_sweep WHERE run_id = $1 AND rule = $2 ORDER BY threshold;
