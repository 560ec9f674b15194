INSERT INTO meta.run_generations
SELECT run_id, generation_id FROM stg_generations
WHERE run_id IN (SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations')
