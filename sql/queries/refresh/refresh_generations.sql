-- refresh_generations: images with score rows appended since the watermark ($1), plus every old and new
-- generation of a run whose generations changed.
CREATE OR REPLACE TEMP TABLE refresh_generations AS
SELECT DISTINCT generation_id FROM scores WHERE rowid >= $1
UNION
SELECT generation_id FROM meta.run_generations
WHERE run_id IN (SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations')
UNION
SELECT generation_id FROM stg_generations
WHERE run_id IN (SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations')
