-- load/insert_batch: one batch row from the registered one-row Arrow table `incoming_batch`, by column name
-- (later migrations add columns; a column the table lacks stays NULL). Run by pipelines/load.py _write_batch.
INSERT INTO batches BY NAME SELECT * FROM incoming_batch;
