DELETE FROM meta.run_generations
