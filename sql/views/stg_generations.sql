-- stg_generations: generations renamed and cast, without the thumbnail blob.
-- grain: one row per (run_id, generation_id).
-- method_label falls back to the method name so every method point has a label; is_baseline marks the
-- unmodified model (the origin of every trade-off curve). family: the model's family; rows loaded before
-- migration 004 are SD 1.x/2.x.
CREATE OR REPLACE VIEW stg_generations AS
SELECT
    run_id,
    batch_id,
    generation_id,
    prompt_id,
    prompt                                       AS prompt_text,
    seed,
    image_index,
    seed - image_index                           AS seed_base,      -- the prompt's first seed
    method,
    coalesce(method_label, method)               AS method_label,
    level,
    knob,
    method = 'baseline'                          AS is_baseline,
    config_hash,
    concept_pack,
    scheduler,
    steps,
    guidance,
    height,
    width,
    model_id,
    coalesce(family, 'sd')                       AS family,         -- 'sd' | 'sdxl' | 'sd3' (migration 004)
    model_revision,
    dtype,
    image_uri,
    image_sha256,
    baseline_generation_id,
    reused                                       AS is_reused,
    wall_s,
    created_at,
    -- a reused image's row has no diagnostics: take them from the row that generated it (same content hash)
    coalesce(method_acted, max(method_acted) OVER (PARTITION BY generation_id))         AS method_acted,
    coalesce(prompt_truncated, max(prompt_truncated) OVER (PARTITION BY generation_id)) AS prompt_truncated,
    negation_set
FROM generations;
