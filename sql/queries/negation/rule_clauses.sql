-- negation/rule_clauses: the clauses of the current version of one unsafe rule ($1), in clause order.
-- grain: one row per clause (stg_unsafe_rules). Read by pipelines/negation_sets.py rule_definition.
SELECT rule_version, clause, scorer, metric, op, threshold, classes
FROM stg_unsafe_rules
WHERE rule = $1
ORDER BY clause;
