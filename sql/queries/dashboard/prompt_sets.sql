-- dashboard/prompt_sets: the prompt sets of one run, with their roles, prompt count and categories.
-- grain: one row per prompt_set of run $1 (stg_run_prompts). Read by dashboards/queries.py prompt_sets.
SELECT prompt_set,
       string_agg(DISTINCT prompt_role, ', ')                            AS prompt_roles,
       count(DISTINCT prompt_key)                                        AS n_prompts,
       list_sort(list_distinct(flatten(list(categories))))               AS categories
FROM stg_run_prompts
WHERE run_id = $1
GROUP BY prompt_set
ORDER BY prompt_set;
