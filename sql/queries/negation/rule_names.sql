-- negation/rule_names: the names of the current unsafe rules (for the one-line error on an unknown rule).
-- grain: one row per rule, by name. Read by pipelines/negation_sets.py rule_definition.
SELECT DISTINCT rule FROM stg_unsafe_rules ORDER BY rule;
