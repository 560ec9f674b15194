-- load/stored_batches: which of the listed batch ids ($1, a list) already have generation rows.
-- grain: one row per stored batch id. Run by pipelines/load.py load_run (one scan instead of a delete per batch).
SELECT DISTINCT batch_id FROM generations WHERE list_contains($1, batch_id);
