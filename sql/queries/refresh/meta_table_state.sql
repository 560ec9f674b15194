-- meta_table_state: whole-table state at the last refresh: scores (with its append watermark, the next rowid)
-- and the unsafe rules.
CREATE TABLE IF NOT EXISTS meta.table_state (source VARCHAR PRIMARY KEY, n BIGINT NOT NULL, sig HUGEINT NOT NULL, next_rowid BIGINT)
