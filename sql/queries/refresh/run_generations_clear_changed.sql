DELETE FROM meta.run_generations
WHERE run_id IN (SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations')
