-- int_generation_prompts: each generated image in each prompt set of its run that holds its prompt.
-- grain: one row per (run_id, generation_id, prompt_set).
--
-- Generations carry prompt_id (a hash of the text) but not the set: the planner makes one image series
-- for a text that appears in several sets, so the image counts in each of them. Where the prompt file
-- gives a seed (I2P repeats texts under different seeds), the generation's first seed must match it,
-- unless the run fixes seeds for every prompt.
--
-- materialized: table refreshed by run_id (narrowed inputs: stg_runs, stg_run_prompts, stg_generations)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A run's rows depend only on that run's generations, prompts and spec.
CREATE OR REPLACE VIEW int_generation_prompts AS
SELECT
    g.run_id,
    g.generation_id,
    p.prompt_set,
    p.set_role,
    p.prompt_role,
    p.prompt_key,
    p.prompt_id,
    p.prompt_seed,
    p.categories,
    p.is_hard,
    p.pair_id,
    p.pair_role,
    g.family,
    g.model_id,
    g.method,
    g.method_label,
    g.level,
    g.knob,
    g.is_baseline,
    g.seed,
    g.image_index,
    g.baseline_generation_id,
    g.is_reused,
    g.wall_s
FROM stg_generations g
JOIN stg_runs r ON r.run_id = g.run_id
JOIN stg_run_prompts p
  ON p.run_id = g.run_id
 AND p.prompt_id = g.prompt_id
 AND (p.prompt_seed IS NULL OR r.has_fixed_seeds OR p.prompt_seed = g.seed_base)
QUALIFY row_number() OVER (
    PARTITION BY g.run_id, g.generation_id, p.prompt_set ORDER BY p.source_line NULLS LAST, p.prompt_key
) = 1;
