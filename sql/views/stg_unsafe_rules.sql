-- stg_unsafe_rules: the clauses of the current (highest) version of each unsafe rule.
-- grain: one row per (rule, clause).
CREATE OR REPLACE VIEW stg_unsafe_rules AS
WITH current_version AS (
    SELECT *
    FROM unsafe_rules
    QUALIFY version = max(version) OVER (PARTITION BY rule)
)
SELECT
    rule,
    version                                      AS rule_version,
    clause,
    scorer,
    metric,
    op,
    threshold,
    label_set,
    classes,
    classes IS NOT NULL                          AS is_detection_clause,
    count(*) OVER (PARTITION BY rule)            AS n_clauses,
    description,
    source
FROM current_version;
