-- object_kind: 'table' or 'view' for a name ($1) in the current database's main schema (no row: neither).
SELECT 'table' FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'
AND table_name = $1
UNION ALL
SELECT 'view' FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main'
AND view_name = $1
