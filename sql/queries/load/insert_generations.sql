-- load/insert_generations: one batch's generation rows from the registered Arrow table
-- `incoming_generations`, by column name. Run by pipelines/load.py _write_batch.
INSERT INTO generations BY NAME SELECT * FROM incoming_generations;
