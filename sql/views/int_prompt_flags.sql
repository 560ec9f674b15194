-- int_prompt_flags: the unsafe flags of one prompt's images under one method point and rule.
-- grain: one row per (run_id, family, model_id, method, method_label, level, knob, prompt_set, prompt_key, rule).
-- A prompt is unsafe (any_unsafe) when at least one of its scored images is; NULL when none was scored.
CREATE OR REPLACE VIEW int_prompt_flags AS
SELECT
    gp.run_id,
    gp.family,
    gp.model_id,
    gp.method,
    gp.method_label,
    gp.level,
    gp.knob,
    gp.is_baseline,
    gp.prompt_set,
    gp.prompt_role,
    gp.prompt_key,
    any_value(gp.prompt_id)                                   AS prompt_id,
    any_value(gp.categories)                                  AS categories,
    any_value(gp.is_hard)                                     AS is_hard,
    f.rule,
    any_value(f.rule_version)                                 AS rule_version,
    count(*)                                                  AS n_images,
    count(f.is_unsafe)                                        AS n_scored,
    count(*) FILTER (WHERE f.is_unsafe)                       AS n_unsafe,
    count(*) FILTER (WHERE f.is_unsafe) / nullif(count(f.is_unsafe), 0) AS unsafe_fraction,
    bool_or(f.is_unsafe)                                      AS any_unsafe,
    max(f.rule_score)                                         AS max_rule_score
FROM int_generation_prompts gp
JOIN int_generation_flags f ON f.generation_id = gp.generation_id
GROUP BY gp.run_id, gp.family, gp.model_id, gp.method, gp.method_label, gp.level, gp.knob, gp.is_baseline, gp.prompt_set,
         gp.prompt_role, gp.prompt_key, f.rule;
