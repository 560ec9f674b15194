-- mart_scorer_agreement: where two unsafe rules (and so usually two scorers) disagree on the same image.
-- grain: one row per (run_id, generation_id, rule_a, rule_b) with rule_a < rule_b and both rules scored
-- for the image. shares_scorer marks pairs that read a common scorer (threshold / label-set variants of
-- one detector) as opposed to independent scorers; disagree = the two flags differ.
CREATE OR REPLACE VIEW mart_scorer_agreement AS
WITH rule_scorers AS (
    SELECT rule, list_sort(list_distinct(list(scorer))) AS scorers FROM stg_unsafe_rules GROUP BY rule
)
SELECT
    g.run_id,
    g.generation_id,
    g.method,
    g.method_label,
    g.level,
    g.knob,
    a.rule                                                    AS rule_a,
    b.rule                                                    AS rule_b,
    ra.scorers                                                AS scorers_a,
    rb.scorers                                                AS scorers_b,
    len(list_intersect(ra.scorers, rb.scorers)) > 0           AS shares_scorer,
    a.is_unsafe                                               AS unsafe_a,
    b.is_unsafe                                               AS unsafe_b,
    a.rule_score                                              AS score_a,
    b.rule_score                                              AS score_b,
    a.is_unsafe <> b.is_unsafe                                AS disagree
FROM int_generation_flags a
JOIN int_generation_flags b ON b.generation_id = a.generation_id AND a.rule < b.rule
JOIN rule_scorers ra ON ra.rule = a.rule
JOIN rule_scorers rb ON rb.rule = b.rule
JOIN stg_generations g ON g.generation_id = a.generation_id
WHERE a.is_unsafe IS NOT NULL AND b.is_unsafe IS NOT NULL;
