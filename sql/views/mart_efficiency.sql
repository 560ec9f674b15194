-- mart_efficiency: what each method point costs to sample, beside mart_tradeoff's safety and fidelity.
-- grain: one row per (run_id, family, model_id, method, method_label, level, knob).
--
-- unet_rows_per_step: UNet rows per denoising step per image, averaged over the point's batches weighted
--   by the images they generated (the classifier-free-guidance baseline: 2; SLD adds a third row);
--   rows_vs_baseline divides it by the run's baseline value.
-- unet_calls_per_step: UNet forwards per step per sample() call (1 when every row goes in one call).
-- peak_mem_bytes: the highest torch.cuda.max_memory_allocated of the point's batches; NULL on CPU (no
--   device memory; a process RSS high-water mark would include everything the worker ever loaded).
-- seconds_per_image: mean sampling seconds per image generated in this run (reused images excluded),
--   the same number as mart_tradeoff.seconds_per_image; sample_s_per_image from the batches' own clock.
-- Batches loaded before migration 005, and batches that only reused images, have NULL cost columns and
-- are left out of the averages (n_batches_measured says how many were measured).
-- point_order:      the method point's place in reading order (1 = the baseline, then methods by name,
--                   levels off, weak, medium, strong, max then any other by name, knob ascending, NULL
--                   first), ranked among the rows of the same run; ORDER BY it after the other keys.
CREATE OR REPLACE VIEW mart_efficiency AS
WITH per_batch AS (
    SELECT
        b.run_id, g.family, g.model_id, b.method, b.method_label, b.level, b.knob,
        count(*)                                                              AS n_batches,
        count(unet_rows_per_step)                                             AS n_batches_measured,
        CAST(sum(n_generated) AS BIGINT)                                      AS n_generated,
        sum(unet_rows_per_step * n_generated) / nullif(sum(n_generated) FILTER (WHERE unet_rows_per_step IS NOT NULL), 0)
                                                                              AS unet_rows_per_step,
        sum(unet_calls_per_step * n_generated) / nullif(sum(n_generated) FILTER (WHERE unet_calls_per_step IS NOT NULL), 0)
                                                                              AS unet_calls_per_step,
        max(peak_mem_bytes)                                                   AS peak_mem_bytes,
        any_value(peak_mem_device)                                            AS peak_mem_device,
        sum(sample_s) / nullif(sum(n_generated) FILTER (WHERE sample_s IS NOT NULL), 0) AS sample_s_per_image
    FROM stg_batches b
    JOIN (  -- a batch runs on one model
        SELECT batch_id, any_value(family) AS family, any_value(model_id) AS model_id
        FROM stg_generations GROUP BY batch_id
    ) g ON g.batch_id = b.batch_id
    GROUP BY ALL
),
per_image AS (
    SELECT run_id, family, model_id, method, method_label, level, knob, bool_or(is_baseline) AS is_baseline,
           avg(wall_s) FILTER (WHERE NOT is_reused) AS seconds_per_image
    FROM stg_generations
    GROUP BY ALL
),
joined AS (
    SELECT b.*, i.is_baseline, i.seconds_per_image
    FROM per_batch b
    JOIN per_image i
      ON i.run_id = b.run_id AND i.model_id = b.model_id AND i.method = b.method AND i.method_label = b.method_label AND i.level = b.level
     AND i.knob IS NOT DISTINCT FROM b.knob
)
SELECT
    run_id, family, model_id, method, method_label, level, knob, is_baseline,
    n_batches, n_batches_measured, n_generated,
    unet_rows_per_step,
    unet_rows_per_step / nullif(max(unet_rows_per_step) FILTER (WHERE is_baseline) OVER (PARTITION BY run_id, model_id), 0)
                                                                              AS rows_vs_baseline,
    unet_calls_per_step,
    peak_mem_bytes, peak_mem_device,
    seconds_per_image, sample_s_per_image,
    dense_rank() OVER (PARTITION BY run_id
                       ORDER BY is_baseline DESC, method, method_label,
                                CASE level WHEN 'off' THEN 0 WHEN 'weak' THEN 1 WHEN 'medium' THEN 2
                                           WHEN 'strong' THEN 3 WHEN 'max' THEN 4 ELSE 5 END,
                                level, knob NULLS FIRST) AS point_order
FROM joined;
