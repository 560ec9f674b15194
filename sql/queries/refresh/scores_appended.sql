-- scores_appended: rows and sum of row hashes of the score rows at or past rowid $1 (the watermark).
SELECT count(*), coalesce(sum(hash(*COLUMNS(*))), 0) FROM scores WHERE rowid >= $1
