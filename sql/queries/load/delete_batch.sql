-- load/delete_batch: drop the batch row of one batch ($1) before it is written again.
-- Run by pipelines/load.py _write_batch.
DELETE FROM batches WHERE batch_id = $1;
