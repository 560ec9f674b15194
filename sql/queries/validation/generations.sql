-- validation/generations: per generation row of one run: key uniqueness, baseline links, score
-- completeness / ranges / detections, aggregated from the score rows.
-- grain: one row per generation row of run $1. Parameters: $2 allow documented nulls, $3 scorers required
-- per generation, $4 of which need a baseline image, $5 metrics required, $6 of which need a baseline image.
-- Reads the registered `cur_versions`, `metric_specs` and `detector_classes`.
-- Read by pipelines/expectations/frames.py (frame `generations`).
WITH g AS (
    SELECT generation_id, model_id, method, method_label, level, knob, prompt, seed, image_index,
           baseline_generation_id, height, width
    FROM generations WHERE run_id = $1),
base AS (SELECT generation_id, model_id, prompt, seed, image_index FROM g WHERE method = 'baseline'),
gg AS (SELECT DISTINCT generation_id, generation_id = baseline_generation_id AS is_self FROM g),
rs AS (  -- the run's score rows: its generations at the current version of a known scorer
    SELECT s.generation_id, s.scorer, s.metric, s.value, s.details, m.lo, m.hi,
           -- a baseline generation's own fidelity rows are allowed, not required
           m.required AND NOT (m.needs_baseline AND gg.is_self) AS required,
           m.metric IS NOT NULL AS known_metric,
           -- JSON is only parsed for null values (CASE evaluates its branch on matching rows only)
           CASE WHEN s.value IS NULL THEN m.nullable OR s.details->>'skipped' IS NOT NULL END
               AS documented_null
    FROM scores s JOIN gg USING (generation_id)
    JOIN cur_versions USING (scorer, scorer_version)
    LEFT JOIN metric_specs m USING (scorer, metric)),
per_scorer AS (  -- (generation, scorer, metric) is the key of `scores`: count(*) counts metrics
    SELECT generation_id, scorer,
           count(*) FILTER (WHERE required) AS n_metrics,
           count(*) FILTER (WHERE value IS NULL AND NOT ($2 AND coalesce(documented_null, false)))
               AS n_null,
           count(*) FILTER (WHERE isnan(value) OR value < coalesce(lo, -'inf'::DOUBLE)
                            OR value > coalesce(hi, 'inf'::DOUBLE)) AS n_out_of_range,
           count(*) FILTER (WHERE NOT known_metric) AS n_unknown_metric
    FROM rs GROUP BY generation_id, scorer),
agg AS (
    SELECT generation_id, count(*) FILTER (WHERE n_metrics > 0) AS n_scorers, sum(n_metrics) AS n_metrics,
           sum(n_null) AS n_null, sum(n_out_of_range) AS n_out_of_range,
           sum(n_unknown_metric) AS n_unknown_metric
    FROM per_scorer GROUP BY generation_id),
det AS (
    SELECT generation_id, unnest(CAST(details->'$.detections' AS JSON[])) AS d
    FROM rs WHERE scorer = 'nudenet' AND metric = 'detections'),
det_agg AS (
    SELECT det.generation_id,
           count(*) FILTER (WHERE NOT coalesce(
               (d->>'$.box[0]')::DOUBLE >= 0 AND (d->>'$.box[1]')::DOUBLE >= 0
               AND (d->>'$.box[2]')::DOUBLE >= 0 AND (d->>'$.box[3]')::DOUBLE >= 0
               AND (d->>'$.box[0]')::DOUBLE + (d->>'$.box[2]')::DOUBLE <= any_width
               AND (d->>'$.box[1]')::DOUBLE + (d->>'$.box[3]')::DOUBLE <= any_height, false))
               AS n_box_outside,
           count(*) FILTER (WHERE d->>'class' IS NULL OR d->>'class' NOT IN (SELECT class FROM detector_classes))
               AS n_bad_class
    FROM det JOIN (SELECT generation_id, any_value(width) AS any_width, any_value(height) AS any_height
                   FROM g GROUP BY generation_id) sz USING (generation_id)
    GROUP BY det.generation_id)
SELECT g.generation_id, g.method,
       count(*) OVER (PARTITION BY g.model_id, g.method, g.method_label, g.level, g.knob, g.prompt,
                      g.seed, g.image_index) AS n_same_key,
       g.generation_id = g.baseline_generation_id AS is_baseline_self,
       (g.method = 'baseline') = (g.generation_id = g.baseline_generation_id) AS baseline_link_ok,
       base.generation_id IS NOT NULL AS baseline_present,
       base.generation_id IS NULL OR (base.prompt = g.prompt AND base.seed = g.seed
                                       AND base.image_index = g.image_index
                                       AND base.model_id = g.model_id) AS baseline_same_prompt_seed,
       $3 - CASE WHEN g.generation_id = g.baseline_generation_id THEN $4 ELSE 0 END
           - coalesce(agg.n_scorers, 0) AS n_missing_scorers,
       $5 - CASE WHEN g.generation_id = g.baseline_generation_id THEN $6 ELSE 0 END
           - coalesce(agg.n_metrics, 0) AS n_missing_metrics,
       coalesce(agg.n_null, 0) AS n_null_values,
       coalesce(agg.n_out_of_range, 0) AS n_out_of_range,
       coalesce(agg.n_unknown_metric, 0) AS n_unknown_metrics,
       coalesce(det_agg.n_box_outside, 0) AS n_boxes_outside,
       coalesce(det_agg.n_bad_class, 0) AS n_bad_classes
FROM g
LEFT JOIN (SELECT DISTINCT ON (generation_id) * FROM base) base
       ON base.generation_id = g.baseline_generation_id
LEFT JOIN agg ON agg.generation_id = g.generation_id
LEFT JOIN det_agg ON det_agg.generation_id = g.generation_id;
