-- negation/candidate_flags: the rule's ($1) verdict and score on each candidate of the scratch warehouse.
-- grain: one row per candidate generation_id. Read by pipelines/negation_sets.py apply_rule.
SELECT generation_id, is_unsafe, rule_score FROM int_generation_flags WHERE rule = $1;
