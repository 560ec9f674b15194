-- dashboard/review_flags: each rule's verdict on the images of one (run $1, prompt $2, seed $3).
-- grain: one row per (generation_id, rule) of int_generation_flags; is_unsafe NULL = no verdict.
-- Read by dashboards/queries.py review_images (what the review page blurs: flagged or unscored).
SELECT generation_id, rule, is_unsafe, rule_score
FROM int_generation_flags
WHERE generation_id IN (SELECT generation_id FROM stg_generations WHERE run_id = $1 AND prompt_id = $2 AND seed = $3)
ORDER BY rule;
