-- delete_previously_scored: stg_scores' rows of the refreshed images that had any (a new image has none).
DELETE FROM stg_scores WHERE generation_id IN (
    SELECT generation_id FROM temp.refresh_generations INTERSECT SELECT generation_id FROM temp.previously_scored
)
