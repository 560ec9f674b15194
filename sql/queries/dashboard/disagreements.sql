-- dashboard/disagreements: images of one run ($1) where rule $2 and another rule disagree, at most $3 rows.
-- grain: one row per (generation_id, other rule). Read by dashboards/queries.py disagreements.
-- Order: independent scorers first, then the other rule, then generation_id.
SELECT generation_id, method, method_label, level, knob,
       CASE WHEN rule_a = $2 THEN rule_b ELSE rule_a END         AS other_rule,
       shares_scorer,
       CASE WHEN rule_a = $2 THEN unsafe_a ELSE unsafe_b END     AS unsafe_here,
       CASE WHEN rule_a = $2 THEN unsafe_b ELSE unsafe_a END     AS unsafe_other,
       CASE WHEN rule_a = $2 THEN score_a ELSE score_b END       AS score_here,
       CASE WHEN rule_a = $2 THEN score_b ELSE score_a END       AS score_other
FROM mart_scorer_agreement
WHERE run_id = $1 AND disagree AND (rule_a = $2 OR rule_b = $2)
ORDER BY shares_scorer, other_rule, generation_id
LIMIT $3;
