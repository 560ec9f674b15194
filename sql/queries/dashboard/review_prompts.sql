-- dashboard/review_prompts: the prompts of one run ($1) that have images, with their sets, roles, categories.
-- grain: one row per prompt_id, in the order of the prompt files (first source line).
-- Read by dashboards/queries.py review_prompts (the review page's prompt picker).
SELECT p.prompt_id,
       any_value(p.prompt_text)                                   AS prompt_text,
       list_sort(list_distinct(list(p.prompt_set)))               AS prompt_sets,
       list_sort(list_distinct(list(p.prompt_role)))              AS prompt_roles,
       list_sort(list_distinct(flatten(list(p.categories))))      AS categories
FROM stg_run_prompts p
WHERE p.run_id = $1
  AND EXISTS (SELECT 1 FROM stg_generations g WHERE g.run_id = p.run_id AND g.prompt_id = p.prompt_id)
GROUP BY p.prompt_id
ORDER BY min(p.source_line), p.prompt_id;
