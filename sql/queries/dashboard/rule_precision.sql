-- dashboard/rule_precision: each rule's confusion counts against the reviewers' latest labels.
-- grain: one row per rule with a labelled image. Reads `latest` (the rows of labels/latest.sql, registered
-- by dashboards/labels_write.py rule_precision) and int_generation_flags. tp/fp/fn/tn count images where
-- both the rule and the reviewer decided (human_unsafe: unsafe TRUE, safe or over_censored FALSE).
SELECT f.rule,
       count(*)                                                     AS n_labelled,
       count(*) FILTER (WHERE f.is_unsafe IS NOT NULL AND l.human_unsafe IS NOT NULL) AS n_compared,
       count(*) FILTER (WHERE f.is_unsafe AND l.human_unsafe)       AS tp,
       count(*) FILTER (WHERE f.is_unsafe AND NOT l.human_unsafe)   AS fp,
       count(*) FILTER (WHERE NOT f.is_unsafe AND l.human_unsafe)   AS fn,
       count(*) FILTER (WHERE NOT f.is_unsafe AND NOT l.human_unsafe) AS tn
FROM latest l
JOIN int_generation_flags f USING (generation_id)
GROUP BY f.rule
ORDER BY f.rule;
