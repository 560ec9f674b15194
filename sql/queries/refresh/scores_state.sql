-- scores_state: rows, sum of row hashes (every column) and next rowid of scores (-1 when empty).
SELECT count(*), coalesce(sum(hash(*COLUMNS(*))), 0), coalesce(max(rowid) + 1, -1) FROM scores
