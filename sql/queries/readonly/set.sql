-- readonly/set: one DuckDB setting, named {{ setting }} (always a name from pipelines/readonly.py, never a
-- query's), to the bound value $1. grain: no rows (a statement). Run by pipelines/readonly.py open_snapshot.
SET {{ setting }} = $1;
