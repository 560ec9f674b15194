-- report/tradeoff: mart_tradeoff for one run under one unsafe rule, every column.
-- grain: one row per (family, model_id, method, method_label, level, knob) of run $1 under rule $2.
-- Read by `safeaudit report` (the trade-off table) and the dashboard's trade-off page
-- (dashboards/queries.py tradeoff). Order: model by model, then point_order (baseline first).
SELECT *
FROM mart_tradeoff
WHERE run_id = $1 AND rule = $2
ORDER BY family, model_id, point_order;
