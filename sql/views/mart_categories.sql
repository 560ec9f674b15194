-- mart_categories: unsafe rate per category on the unsafe prompts, for the method x level heat map.
-- grain: one row per (run_id, family, model_id, method, method_label, level, knob, category, rule); category 'all' pools
-- every unsafe prompt. Unsafe prompt sets are pooled: an image whose prompt sits in two unsafe sets counts
-- once, under the union of its categories. Wilson 95% interval as in mart_safety.
--
-- point_order:      the method point's place in reading order (1 = the baseline, then methods by name,
--                   levels off, weak, medium, strong, max then any other by name, knob ascending, NULL
--                   first), ranked among the rows of the same run and rule; ORDER BY it after the other keys.
-- materialized: table refreshed by run_id (narrowed inputs: int_generation_prompts, int_generation_flags)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A run's rows depend only on that run's images and their flags.
CREATE OR REPLACE VIEW mart_categories AS
WITH images AS (
    SELECT DISTINCT
        run_id, generation_id, family, model_id, method, method_label, level, knob, is_baseline, prompt_key,
        unnest(list_distinct(list_prepend('all', categories))) AS category
    FROM int_generation_prompts
    WHERE prompt_role = 'unsafe'
),
prompts AS (  -- rule-independent: int_generation_flags has a row for every image and every rule
    SELECT run_id, family, model_id, method, method_label, level, knob, is_baseline, category, count(DISTINCT prompt_key) AS n_prompts
    FROM images
    GROUP BY ALL
),
image_categories AS (  -- an image counts once per category, however many prompts of the category it matched
    SELECT DISTINCT run_id, generation_id, family, model_id, method, method_label, level, knob, is_baseline, category FROM images
),
flag_counts AS (  -- one row per image and rule in each group, so count(*) counts distinct images
    SELECT
        i.run_id, i.family, i.model_id, i.method, i.method_label, i.level, i.knob, i.is_baseline, i.category, f.rule,
        any_value(f.rule_version)                             AS rule_version,
        count(*)                                              AS n_images,
        count(*) FILTER (WHERE f.is_unsafe IS NOT NULL)       AS n_scored,
        count(*) FILTER (WHERE f.is_unsafe)                   AS n_unsafe
    FROM image_categories i
    JOIN int_generation_flags f ON f.generation_id = i.generation_id
    GROUP BY i.run_id, i.family, i.model_id, i.method, i.method_label, i.level, i.knob, i.is_baseline, i.category, f.rule
),
counts AS (
    SELECT
        c.run_id, c.family, c.model_id, c.method, c.method_label, c.level, c.knob, c.is_baseline, c.category, c.rule, c.rule_version,
        p.n_prompts, c.n_images, c.n_scored, c.n_unsafe
    FROM flag_counts c
    JOIN prompts p
      ON p.run_id = c.run_id AND p.model_id = c.model_id AND p.method = c.method AND p.method_label = c.method_label AND p.level = c.level
     AND p.knob IS NOT DISTINCT FROM c.knob AND p.is_baseline = c.is_baseline
     AND p.category IS NOT DISTINCT FROM c.category
),
rates AS (
    SELECT *, n_unsafe / nullif(n_scored, 0) AS unsafe_rate, 1.959963984540054 AS z FROM counts
)
SELECT
    run_id, family, model_id, method, method_label, level, knob, is_baseline, category, rule, rule_version,
    n_prompts, n_images, n_scored, n_unsafe, unsafe_rate,
    CASE WHEN unsafe_rate = 0 THEN 0.0 ELSE (unsafe_rate + z * z / (2 * n_scored)
        - z * sqrt(unsafe_rate * (1 - unsafe_rate) / n_scored + z * z / (4 * n_scored * n_scored)))
        / (1 + z * z / n_scored) END                              AS unsafe_rate_low,
    CASE WHEN unsafe_rate = 1 THEN 1.0 ELSE (unsafe_rate + z * z / (2 * n_scored)
        + z * sqrt(unsafe_rate * (1 - unsafe_rate) / n_scored + z * z / (4 * n_scored * n_scored)))
        / (1 + z * z / n_scored) END                              AS unsafe_rate_high,
    dense_rank() OVER (PARTITION BY run_id, rule
                       ORDER BY is_baseline DESC, method, method_label,
                                CASE level WHEN 'off' THEN 0 WHEN 'weak' THEN 1 WHEN 'medium' THEN 2
                                           WHEN 'strong' THEN 3 WHEN 'max' THEN 4 ELSE 5 END,
                                level, knob NULLS FIRST) AS point_order
FROM rates;
