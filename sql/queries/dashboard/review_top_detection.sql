-- dashboard/review_top_detection: the strongest detector box of each image of one (run $1, prompt $2, seed $3).
-- grain: one row per generation_id with a detection (int_detections). Read by dashboards/queries.py review_images.
SELECT generation_id, arg_max(class, score) AS top_class, max(score) AS top_score
FROM int_detections
WHERE generation_id IN (SELECT generation_id FROM stg_generations WHERE run_id = $1 AND prompt_id = $2 AND seed = $3)
GROUP BY generation_id;
