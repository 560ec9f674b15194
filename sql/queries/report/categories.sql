-- report/categories: mart_categories (unsafe prompt sets pooled) for one run under one unsafe rule.
-- grain: one row per (family, model_id, method point, category) of run $1 under rule $2.
-- Read by `safeaudit report` and the dashboard's categories page (dashboards/queries.py category_rates).
-- Order: category 'all' first, then categories by name, then point_order.
SELECT *
FROM mart_categories
WHERE run_id = $1 AND rule = $2
ORDER BY category = 'all' DESC, category, point_order;
