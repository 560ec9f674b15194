DELETE FROM meta.table_state
