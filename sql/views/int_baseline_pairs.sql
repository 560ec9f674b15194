-- int_baseline_pairs: every generation beside its same-seed baseline (same prompt, seed and image index
-- under the unmodified model, joined by baseline_generation_id), with both sides' weight-free quality
-- metrics pivoted out of the score rows.
-- grain: one row per (run_id, generation_id).
--
-- A baseline generation is its own pair (is_self_pair): its drift from itself is zero by definition, so
-- ssim = 1, psnr = 100 dB (the fidelity scorer's cap for identical images) and clip_score_drop = 0. That
-- keeps the baseline as the origin of every trade-off curve instead of a row with missing values.
-- The fidelity scorer compares against the baseline image itself, so ssim / psnr are read from the
-- generation's own score rows; CLIP score and toy fidelity are read on both sides.
--
-- materialized: table refreshed by run_id (narrowed inputs: stg_generations, stg_scores)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A run's rows depend on that run's generations and the quality scores of those images and their
-- baselines (a run holding a re-scored image or baseline is refreshed).
CREATE OR REPLACE VIEW int_baseline_pairs AS
WITH metrics AS (
    SELECT
        generation_id,
        max(value) FILTER (WHERE scorer = 'fidelity' AND metric = 'ssim')               AS ssim,
        max(value) FILTER (WHERE scorer = 'fidelity' AND metric = 'psnr')               AS psnr,
        max(value) FILTER (WHERE scorer = 'clip_score' AND metric = 'clip_score')       AS clip_score,
        max(value) FILTER (WHERE scorer = 'degenerate' AND metric = 'is_black')         AS is_black,
        max(value) FILTER (WHERE scorer = 'degenerate' AND metric = 'is_constant')      AS is_constant,
        max(value) FILTER (WHERE scorer = 'toy_fidelity' AND metric = 'match')          AS toy_match,
        max(value) FILTER (WHERE scorer = 'toy_fidelity' AND metric = 'colour_match')   AS toy_colour_match,
        max(value) FILTER (WHERE scorer = 'toy_fidelity' AND metric = 'shape_match')    AS toy_shape_match
    FROM stg_scores
    WHERE scorer IN ('fidelity', 'clip_score', 'degenerate', 'toy_fidelity')
    GROUP BY generation_id
),
pairs AS (
    SELECT
        g.run_id,
        g.generation_id,
        g.baseline_generation_id,
        g.is_baseline OR g.generation_id = g.baseline_generation_id              AS is_self_pair,
        EXISTS (
            SELECT 1 FROM stg_generations b
            WHERE b.run_id = g.run_id AND b.generation_id = g.baseline_generation_id
        )                                                                          AS baseline_in_run,
        m.ssim,
        m.psnr,
        m.clip_score,
        bm.clip_score                                                              AS baseline_clip_score,
        m.is_black,
        m.is_constant,
        m.toy_match,
        m.toy_colour_match,
        m.toy_shape_match,
        bm.toy_match                                                               AS baseline_toy_match
    FROM stg_generations g
    LEFT JOIN metrics m ON m.generation_id = g.generation_id
    LEFT JOIN metrics bm ON bm.generation_id = g.baseline_generation_id
)
SELECT
    run_id,
    generation_id,
    baseline_generation_id,
    is_self_pair,
    is_self_pair OR baseline_in_run                                               AS baseline_in_run,
    CASE WHEN is_self_pair THEN 1.0 ELSE ssim END                                 AS ssim,
    CASE WHEN is_self_pair THEN 100.0 ELSE psnr END                               AS psnr,
    clip_score,
    CASE WHEN is_self_pair THEN clip_score ELSE baseline_clip_score END           AS baseline_clip_score,
    CASE WHEN is_self_pair THEN CASE WHEN clip_score IS NOT NULL THEN 0.0 END
         ELSE baseline_clip_score - clip_score END                                AS clip_score_drop,
    is_black = 1                                                                  AS is_black,
    is_constant = 1                                                               AS is_constant,
    CASE WHEN is_black IS NULL AND is_constant IS NULL THEN NULL
         ELSE coalesce(is_black = 1, FALSE) OR coalesce(is_constant = 1, FALSE) END AS is_degenerate,
    toy_match,
    toy_colour_match,
    toy_shape_match,
    CASE WHEN is_self_pair THEN toy_match ELSE baseline_toy_match END             AS baseline_toy_match
FROM pairs;
