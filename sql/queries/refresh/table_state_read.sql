SELECT source, n, sig, next_rowid FROM meta.table_state
