-- load/insert_scores_or_ignore: load/insert_scores, skipping score rows already there (a re-load, a reused
-- image scored before). Run by pipelines/load.py _write_batch after the plain insert met a duplicate key.
INSERT OR IGNORE INTO scores BY NAME SELECT * FROM incoming_scores
ORDER BY generation_id, scorer, scorer_version, metric;
