-- dashboard/review_scores: every stored score of the images of one (run $1, prompt $2, seed $3).
-- grain: one row per (generation_id, scorer, metric) of stg_scores. Read by dashboards/queries.py review_images.
SELECT generation_id, scorer, metric, value
FROM stg_scores
WHERE generation_id IN (SELECT generation_id FROM stg_generations WHERE run_id = $1 AND prompt_id = $2 AND seed = $3);
