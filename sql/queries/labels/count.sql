-- labels/count: the rows of the `labels` table (before and after a merge: the labels it added).
-- grain: one row. Run by pipelines/labels.py merge_labels.
SELECT count(*) FROM labels;
