-- int_generation_flags: the unsafe flag of each generated image under each current unsafe rule.
-- grain: one row per (generation_id, rule).
--
-- Per clause: a value clause compares the score row's value with the threshold; a detection clause takes
-- the highest-scoring detection whose class is in the clause's label set (0 when the image was scored but
-- has none) and compares that. Clauses are OR-ed with three-valued logic: unsafe when any scored clause
-- fires, safe when every clause was scored and none fires, NULL (not scored) otherwise, so a missing
-- scorer never makes an image look safe. rule_score is the compared score for one-clause rules (the
-- threshold sweep reads it) and NULL for multi-clause rules, whose clauses are on different scales.
--
-- materialized: table refreshed by generation_id (narrowed inputs: stg_scores, stg_generations)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A generation's rows depend only on its own score rows, whether it exists, and the rules (a rule change
-- rebuilds the table).
CREATE OR REPLACE VIEW int_generation_flags AS
WITH generated AS (
    SELECT DISTINCT generation_id FROM stg_generations
),
detection_max AS (
    SELECT d.generation_id, r.rule, r.clause, max(d.score) AS max_score
    FROM int_detections d
    JOIN stg_unsafe_rules r
      ON r.is_detection_clause AND r.scorer = d.scorer AND r.metric = d.metric AND list_contains(r.classes, d.class)
    GROUP BY ALL
),
clause_scores AS (
    SELECT
        s.generation_id,
        r.rule,
        r.clause,
        CASE WHEN r.is_detection_clause THEN coalesce(dm.max_score, 0.0) ELSE s.value END AS clause_score
    FROM stg_scores s
    JOIN stg_unsafe_rules r ON r.scorer = s.scorer AND r.metric = s.metric
    LEFT JOIN detection_max dm ON dm.generation_id = s.generation_id AND dm.rule = r.rule AND dm.clause = r.clause
),
clauses AS (
    SELECT
        g.generation_id,
        r.rule,
        r.rule_version,
        r.n_clauses,
        c.clause_score,
        c.generation_id IS NOT NULL AND c.clause_score IS NOT NULL AS is_scored,
        CASE r.op WHEN '>=' THEN c.clause_score >= r.threshold
                  WHEN '>' THEN c.clause_score > r.threshold END   AS fires
    FROM generated g
    CROSS JOIN stg_unsafe_rules r
    LEFT JOIN clause_scores c ON c.generation_id = g.generation_id AND c.rule = r.rule AND c.clause = r.clause
)
SELECT
    generation_id,
    rule,
    any_value(rule_version)                                        AS rule_version,
    any_value(n_clauses)                                           AS n_clauses,
    count(*) FILTER (WHERE is_scored)                              AS n_clauses_scored,
    CASE WHEN bool_or(fires) THEN TRUE
         WHEN count(fires) = count(*) THEN FALSE END               AS is_unsafe,
    CASE WHEN any_value(n_clauses) = 1 THEN max(clause_score) END  AS rule_score
FROM clauses
GROUP BY generation_id, rule;
