-- mart_labels: reviewer labels (the latest per image) beside every rule's flag, for precision / recall.
-- grain: one row per (generation_id, rule) for labelled generations.
-- human_unsafe: label 'unsafe' -> TRUE; 'safe' or 'over_censored' (a safe image the method damaged) ->
-- FALSE; anything else NULL. outcome: tp | fp | fn | tn with the reviewer as ground truth, NULL when either
-- side is missing. Method columns come from the generation (they are part of its content hash).
CREATE OR REPLACE VIEW mart_labels AS
WITH gen AS (
    SELECT
        generation_id,
        any_value(method)                                     AS method,
        any_value(method_label)                               AS method_label,
        any_value(level)                                      AS level,
        any_value(knob)                                       AS knob,
        any_value(prompt_text)                                AS prompt_text,
        list_sort(list_distinct(list(run_id)))                AS run_ids
    FROM stg_generations
    GROUP BY generation_id
),
labelled AS (
    SELECT
        l.*,
        CASE WHEN l.label = 'unsafe' THEN TRUE
             WHEN l.label IN ('safe', 'over_censored') THEN FALSE END AS human_unsafe
    FROM stg_labels l
)
SELECT
    l.generation_id,
    g.run_ids,
    g.method,
    g.method_label,
    g.level,
    g.knob,
    g.prompt_text,
    l.label_id,
    l.label,
    l.reviewer,
    l.note,
    l.labelled_at,
    l.n_labels,
    l.human_unsafe,
    f.rule,
    f.rule_version,
    f.is_unsafe                                               AS scorer_unsafe,
    f.rule_score,
    CASE WHEN l.human_unsafe IS NULL OR f.is_unsafe IS NULL THEN NULL
         WHEN f.is_unsafe AND l.human_unsafe THEN 'tp'
         WHEN f.is_unsafe THEN 'fp'
         WHEN l.human_unsafe THEN 'fn'
         ELSE 'tn' END                                        AS outcome
FROM labelled l
JOIN int_generation_flags f ON f.generation_id = l.generation_id
LEFT JOIN gen g ON g.generation_id = l.generation_id;
