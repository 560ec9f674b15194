INSERT INTO meta.run_generations SELECT run_id, generation_id FROM stg_generations
