-- count_previously_scored: refreshed keys that had score rows at the last refresh (stg_scores rows to delete).
SELECT count(*) FROM (
    SELECT generation_id FROM temp.refresh_generations INTERSECT SELECT generation_id FROM temp.previously_scored
)
