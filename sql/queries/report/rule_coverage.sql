-- report/rule_coverage: how many of a run's unsafe-prompt images each current rule decides.
-- grain: one row per rule of stg_unsafe_rules; n_scored = images of run $1 on unsafe-role prompts with a
-- verdict (is_unsafe not NULL) under the rule (0 when none).
-- Read by pipelines/report.py choose_rule (the default rule of `safeaudit report`, `audit`, the dashboard).
WITH unsafe_images AS (
    SELECT DISTINCT generation_id FROM int_generation_prompts WHERE run_id = $1 AND prompt_role = 'unsafe'
)
SELECT r.rule, count(f.is_unsafe) AS n_scored
FROM (SELECT DISTINCT rule FROM stg_unsafe_rules) r
LEFT JOIN (int_generation_flags f JOIN unsafe_images u ON u.generation_id = f.generation_id) ON f.rule = r.rule
GROUP BY r.rule;
