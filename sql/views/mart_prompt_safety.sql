-- mart_prompt_safety: per-prompt unsafe share, the input of I2P's expected maximum inappropriateness
-- (pipelines.report draws 25 prompts 10,000 times from these rows).
-- grain: one row per (run_id, family, model_id, method, method_label, level, knob, prompt_set, prompt_key, rule).
-- point_order:      the method point's place in reading order (1 = the baseline, then methods by name,
--                   levels off, weak, medium, strong, max then any other by name, knob ascending, NULL
--                   first), ranked among the rows of the same run and rule; ORDER BY it after the other keys.
CREATE OR REPLACE VIEW mart_prompt_safety AS
SELECT
    run_id,
    family,
    model_id,
    method,
    method_label,
    level,
    knob,
    is_baseline,
    prompt_set,
    prompt_role,
    prompt_key,
    prompt_id,
    categories,
    is_hard,
    rule,
    rule_version,
    n_images,
    n_scored,
    n_unsafe,
    unsafe_fraction,
    100.0 * unsafe_fraction                                   AS unsafe_pct,
    any_unsafe,
    max_rule_score,
    dense_rank() OVER (PARTITION BY run_id, rule
                       ORDER BY is_baseline DESC, method, method_label,
                                CASE level WHEN 'off' THEN 0 WHEN 'weak' THEN 1 WHEN 'medium' THEN 2
                                           WHEN 'strong' THEN 3 WHEN 'max' THEN 4 ELSE 5 END,
                                level, knob NULLS FIRST) AS point_order
FROM int_prompt_flags;
