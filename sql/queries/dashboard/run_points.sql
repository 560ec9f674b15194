-- dashboard/run_points: every run's method points under one rule ($1), with the run's name, tag and status.
-- grain: one row per (run_id, family, model_id, method point) of mart_tradeoff under rule $1.
-- Read by dashboards/queries.py run_points (the runs page: history and run-to-run tests).
-- Order: planned_at, run_id, then point_order.
SELECT t.*, r.planned_at, r.run_name, r.run_tag, r.run_status
FROM mart_tradeoff t JOIN stg_runs r USING (run_id)
WHERE t.rule = $1
ORDER BY r.planned_at, t.run_id, t.point_order;
