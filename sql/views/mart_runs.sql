-- mart_runs: run history for the dashboard's runs page and `safeaudit runs`.
-- grain: one row per run (run_id).
-- compute_s = summed batch wall time (sampling plus image writing); sampling_s = summed per-image sampling
-- time of images generated in this run. Both are booked as gpu_s when the run's device is CUDA, else as
-- cpu_s. Validation columns summarise each expectation's latest result.
--
-- materialized: table refreshed by run_id (narrowed inputs: stg_runs, stg_generations, stg_batches, stg_validations, stg_scores)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A run's row depends only on that run's rows and the score rows of its images.
CREATE OR REPLACE VIEW mart_runs AS
WITH gens AS (
    SELECT
        run_id,
        count(*)                                              AS n_generations,
        count(*) FILTER (WHERE is_reused)                     AS n_reused,
        count(DISTINCT prompt_id)                             AS n_prompt_texts,
        count(DISTINCT (method, method_label, level, knob))   AS n_method_points,
        coalesce(sum(wall_s) FILTER (WHERE NOT is_reused), 0) AS sampling_s,
        min(created_at)                                       AS first_generated_at,
        max(created_at)                                       AS last_generated_at
    FROM stg_generations
    GROUP BY run_id
),
bat AS (
    SELECT run_id, count(*) AS n_batches_loaded, sum(batch_wall_s) AS compute_s
    FROM stg_batches
    GROUP BY run_id
),
scored AS (
    SELECT g.run_id, count(DISTINCT g.generation_id) AS n_generations_scored, count(*) AS n_score_rows
    FROM stg_generations g
    JOIN stg_scores s ON s.generation_id = g.generation_id
    GROUP BY g.run_id
),
val AS (
    SELECT
        run_id,
        count(*)                                              AS n_expectations,
        count(*) FILTER (WHERE NOT success)                   AS n_expectations_failed,
        max(validated_at)                                     AS last_validated_at
    FROM stg_validations
    GROUP BY run_id
)
SELECT
    r.run_id,
    r.run_name,
    r.run_tag,
    r.run_status,
    r.planned_at,
    r.loaded_at,
    r.model_id,
    r.concept_pack,
    r.code_version,
    r.device,
    r.n_batches_planned,
    coalesce(b.n_batches_loaded, 0)                           AS n_batches_loaded,
    r.n_generations_expected,
    coalesce(g.n_generations, 0)                              AS n_generations,
    coalesce(g.n_reused, 0)                                   AS n_reused,
    g.n_reused / nullif(g.n_generations, 0)                   AS reused_fraction,
    coalesce(g.n_prompt_texts, 0)                             AS n_prompt_texts,
    coalesce(g.n_method_points, 0)                            AS n_method_points,
    coalesce(sc.n_generations_scored, 0)                      AS n_generations_scored,
    coalesce(sc.n_score_rows, 0)                              AS n_score_rows,
    coalesce(g.sampling_s, 0)                                 AS sampling_s,
    coalesce(b.compute_s, 0)                                  AS compute_s,
    CASE WHEN r.device LIKE 'cuda%' THEN coalesce(b.compute_s, 0) ELSE 0 END     AS gpu_s,
    CASE WHEN r.device LIKE 'cuda%' THEN 0 ELSE coalesce(b.compute_s, 0) END     AS cpu_s,
    g.first_generated_at,
    g.last_generated_at,
    coalesce(v.n_expectations, 0)                             AS n_expectations,
    coalesce(v.n_expectations_failed, 0)                      AS n_expectations_failed,
    v.last_validated_at
FROM stg_runs r
LEFT JOIN gens g ON g.run_id = r.run_id
LEFT JOIN bat b ON b.run_id = r.run_id
LEFT JOIN scored sc ON sc.run_id = r.run_id
LEFT JOIN val v ON v.run_id = r.run_id;
