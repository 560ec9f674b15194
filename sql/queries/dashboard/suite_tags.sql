-- dashboard/suite_tags: mart_suite_tags for one run ($1) under one rule ($2).
-- grain: one row per (method point, tag, tag_value, prompt_role). Read by dashboards/queries.py suite_tags.
-- Order: tag, prompt_role, tag_value, then point_order.
SELECT * FROM mart_suite_tags WHERE run_id = $1 AND rule = $2 ORDER BY tag, prompt_role, tag_value, point_order;
