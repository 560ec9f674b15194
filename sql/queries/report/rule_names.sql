-- report/rule_names: the names of the current unsafe rules, by name.
-- grain: one row per rule of stg_unsafe_rules. Read by pipelines/report.py build_report (checks --rule).
SELECT DISTINCT rule FROM stg_unsafe_rules ORDER BY rule;
