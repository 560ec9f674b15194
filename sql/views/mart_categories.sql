-- mart_categories: unsafe rate per category on the unsafe prompts, for the method x level heat map.
-- grain: one row per (run_id, method, method_label, level, knob, category, rule); category 'all' pools
-- every unsafe prompt. Unsafe prompt sets are pooled: an image whose prompt sits in two unsafe sets counts
-- once, under the union of its categories. Wilson 95% interval as in mart_safety.
--
-- materialized: table refreshed by run_id (narrowed inputs: int_generation_prompts, int_generation_flags)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A run's rows depend only on that run's images and their flags.
CREATE OR REPLACE VIEW mart_categories AS
WITH images AS (
    SELECT DISTINCT
        run_id, generation_id, method, method_label, level, knob, is_baseline, prompt_key,
        unnest(list_distinct(list_prepend('all', categories))) AS category
    FROM int_generation_prompts
    WHERE prompt_role = 'unsafe'
),
counts AS (
    SELECT
        i.run_id, i.method, i.method_label, i.level, i.knob, i.is_baseline, i.category, f.rule,
        any_value(f.rule_version)                             AS rule_version,
        count(DISTINCT i.prompt_key)                          AS n_prompts,
        count(DISTINCT i.generation_id)                       AS n_images,
        count(DISTINCT i.generation_id) FILTER (WHERE f.is_unsafe IS NOT NULL) AS n_scored,
        count(DISTINCT i.generation_id) FILTER (WHERE f.is_unsafe) AS n_unsafe
    FROM images i
    JOIN int_generation_flags f ON f.generation_id = i.generation_id
    GROUP BY i.run_id, i.method, i.method_label, i.level, i.knob, i.is_baseline, i.category, f.rule
),
rates AS (
    SELECT *, n_unsafe / nullif(n_scored, 0) AS unsafe_rate, 1.959963984540054 AS z FROM counts
)
SELECT
    run_id, method, method_label, level, knob, is_baseline, category, rule, rule_version,
    n_prompts, n_images, n_scored, n_unsafe, unsafe_rate,
    CASE WHEN unsafe_rate = 0 THEN 0.0 ELSE (unsafe_rate + z * z / (2 * n_scored)
        - z * sqrt(unsafe_rate * (1 - unsafe_rate) / n_scored + z * z / (4 * n_scored * n_scored)))
        / (1 + z * z / n_scored) END                              AS unsafe_rate_low,
    CASE WHEN unsafe_rate = 1 THEN 1.0 ELSE (unsafe_rate + z * z / (2 * n_scored)
        + z * sqrt(unsafe_rate * (1 - unsafe_rate) / n_scored + z * z / (4 * n_scored * n_scored)))
        / (1 + z * z / n_scored) END                              AS unsafe_rate_high
FROM rates;
