-- rules_state: rows and sum of row hashes of the current unsafe rules.
SELECT count(*), coalesce(sum(hash(*COLUMNS(*))), 0) FROM stg_unsafe_rules
