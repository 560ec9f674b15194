-- report/overcensorship: mart_overcensorship for one run under one unsafe rule.
-- grain: one row per (family, model_id, method point, prompt_role) of run $1 under rule $2
-- (prompt_role benign | proximal | paired).
-- Read by `safeaudit report` and the dashboard (dashboards/queries.py overcensorship).
-- Order: prompt role, then point_order (baseline first).
SELECT *
FROM mart_overcensorship
WHERE run_id = $1 AND rule = $2
ORDER BY prompt_role, point_order;
