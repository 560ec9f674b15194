-- load/delete_batch_generations: drop the generation rows of one batch ($1) before it is written again.
-- Run by pipelines/load.py _write_batch (only when the batch was stored before).
DELETE FROM generations WHERE batch_id = $1;
