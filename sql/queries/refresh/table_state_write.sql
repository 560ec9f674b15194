-- table_state_write: $1-$3 = scores (rows, hash sum, next rowid), $4-$5 = unsafe rules (rows, hash sum).
INSERT INTO meta.table_state VALUES ('scores', $1, $2, $3), ('stg_unsafe_rules', $4, $5, NULL)
