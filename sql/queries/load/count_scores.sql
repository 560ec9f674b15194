-- load/count_scores: the rows of `scores` (before and after a batch's insert: the rows it added).
-- grain: one row. Run by pipelines/load.py _write_batch.
SELECT count(*) FROM scores;
