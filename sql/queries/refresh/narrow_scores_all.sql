-- narrow_scores_all: as narrow_scores_appended, plus the older rows of images scored before the watermark ($1).
CREATE OR REPLACE TEMP TABLE {{ tmp }} AS
SELECT * FROM scores WHERE rowid >= $1 AND generation_id IN (SELECT generation_id FROM temp.refresh_images)
UNION ALL
SELECT * FROM scores WHERE rowid < $1 AND generation_id IN (SELECT generation_id FROM temp.previously_scored)
