-- report/prompts: per-prompt unsafe percentage of each method point, the input of I2P's expected maximum
-- inappropriateness (pipelines/report.py emi_table draws from these rows).
-- grain: one row per (family, model_id, method point, unsafe prompt_key) of run $1 under rule $2, scored
-- prompts only. A prompt in two unsafe sets has the same images, so the same percentage; its categories
-- are the union of the sets'. point_order: as in mart_prompt_safety (reading order of the point).
SELECT family, model_id, method, method_label, level, knob, is_baseline, point_order, prompt_key,
       list_distinct(flatten(list(categories))) AS categories,
       any_value(unsafe_pct) AS unsafe_pct
FROM mart_prompt_safety
WHERE run_id = $1 AND rule = $2 AND prompt_role = 'unsafe' AND n_scored > 0
GROUP BY family, model_id, method, method_label, level, knob, is_baseline, point_order, prompt_key;
