-- stg_validations: expectation results, the latest validation of each (run, suite, expectation).
-- grain: one row per (run_id, suite, expectation).
CREATE OR REPLACE VIEW stg_validations AS
SELECT
    run_id,
    suite,
    suite_version,
    expectation,
    success,
    observed_value,
    unexpected_count,
    validated_at
FROM validations
QUALIFY row_number() OVER (PARTITION BY run_id, suite, expectation ORDER BY validated_at DESC) = 1;
