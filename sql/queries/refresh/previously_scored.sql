-- previously_scored: the refreshed images that had score rows at the last refresh (stg_scores holds a row for
-- each): only theirs can sit before the watermark.
CREATE OR REPLACE TEMP TABLE previously_scored AS SELECT DISTINCT generation_id FROM stg_scores
WHERE generation_id IN (SELECT generation_id FROM temp.refresh_images)
