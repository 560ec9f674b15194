-- mart_prompt_truncation: prompts cut to the text encoder's 75 tokens (end-of-text kept), per prompt set.
-- grain: one row per (run_id, prompt_set). A truncated prompt conditions the model on its first 75 tokens
-- only; analysts filter generations.prompt_truncated, this counts them. Images of a prompt text that is in
-- two sets count in both.
CREATE OR REPLACE VIEW mart_prompt_truncation AS
SELECT
    i.run_id,
    i.prompt_set,
    any_value(i.set_role)                                             AS set_role,
    count(DISTINCT i.prompt_key)                                      AS n_prompts,
    count(DISTINCT i.prompt_key) FILTER (WHERE g.prompt_truncated)    AS n_prompts_truncated,
    count(*)                                                          AS n_images,
    count(*) FILTER (WHERE g.prompt_truncated)                        AS n_images_truncated,
    avg(CAST(g.prompt_truncated AS DOUBLE))                           AS truncated_rate
FROM int_generation_prompts i
JOIN stg_generations g ON g.run_id = i.run_id AND g.generation_id = i.generation_id
GROUP BY i.run_id, i.prompt_set;
