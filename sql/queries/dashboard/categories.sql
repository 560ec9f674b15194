-- dashboard/categories: the categories of one run's unsafe-role prompts, by name.
-- grain: one row per category. Parameters: $1 run_id, $2 prompt_set or NULL (every set).
-- Read by dashboards/queries.py categories (the category picker).
SELECT DISTINCT c.category
FROM stg_run_prompts p, unnest(p.categories) AS c(category)
WHERE p.run_id = $1 AND p.prompt_role = 'unsafe' AND (CAST($2 AS VARCHAR) IS NULL OR p.prompt_set = $2)
ORDER BY c.category;
