-- mart_prompt_safety: per-prompt unsafe share, the input of I2P's expected maximum inappropriateness
-- (pipelines.report draws 25 prompts 10,000 times from these rows).
-- grain: one row per (run_id, family, model_id, method, method_label, level, knob, prompt_set, prompt_key, rule).
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
    max_rule_score
FROM int_prompt_flags;
