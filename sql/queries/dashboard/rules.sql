-- dashboard/rules: one row per current unsafe rule, its clauses summarised.
-- grain: one row per rule of stg_unsafe_rules; op and threshold only for one-clause rules (NULL otherwise).
-- Read by dashboards/queries.py rules (the rule picker, axis titles).
SELECT rule,
       any_value(rule_version)                                  AS rule_version,
       count(*)                                                 AS n_clauses,
       CASE WHEN count(*) = 1 THEN any_value(op) END            AS op,
       CASE WHEN count(*) = 1 THEN any_value(threshold) END     AS threshold,
       list_sort(list_distinct(list(scorer)))                   AS scorers,
       string_agg(DISTINCT label_set, ', ')                     AS label_sets,
       string_agg(description, ' ' ORDER BY clause)             AS description
FROM stg_unsafe_rules
GROUP BY rule
ORDER BY rule;
