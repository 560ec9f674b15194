-- report/safety: mart_safety for one run under one unsafe rule, optionally one prompt set, role, category.
-- grain: one row per (family, model_id, method point, prompt_set, prompt_role, category) of run $1, rule $2.
-- Parameters: $1 run_id, $2 rule, $3 prompt_set or NULL (every set), $4 category or NULL (every category,
-- 'all' included), $5 prompt_role or NULL (every role).
-- Read by `safeaudit report` (every set and category) and the dashboard (dashboards/queries.py safety and
-- category_rates for one set). Order: set, role, category 'all' first then by name, then point_order.
SELECT *
FROM mart_safety
WHERE run_id = $1 AND rule = $2
  AND (CAST($3 AS VARCHAR) IS NULL OR prompt_set = $3)
  AND (CAST($4 AS VARCHAR) IS NULL OR category = $4)
  AND (CAST($5 AS VARCHAR) IS NULL OR prompt_role = $5)
ORDER BY prompt_set, prompt_role, category = 'all' DESC, category, point_order;
