-- narrow_scores_appended: score rows of the refreshed images appended since the watermark ($1).
CREATE OR REPLACE TEMP TABLE {{ tmp }} AS
SELECT * FROM scores WHERE rowid >= $1 AND generation_id IN (SELECT generation_id FROM temp.refresh_images)
