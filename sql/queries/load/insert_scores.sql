-- load/insert_scores: one batch's score rows from the registered Arrow table `incoming_scores`, by name, in
-- key order (building and merging the key's index costs 1.6 + 1.2 s this way for 1 M rows into a 10 M-row
-- table, against 2.3 + 2.2 s in arrival order). A row already there fails the insert: the caller then runs
-- load/insert_scores_or_ignore. Run by pipelines/load.py _write_batch.
INSERT INTO scores BY NAME SELECT * FROM incoming_scores
ORDER BY generation_id, scorer, scorer_version, metric;
