-- foreign_objects: how many objects database $1 holds (tables, user views, schemas other than main); 0 = a new file.
SELECT count(*) FROM (
    SELECT schema_name FROM duckdb_tables() WHERE database_name = $1
    UNION ALL SELECT schema_name FROM duckdb_views() WHERE database_name = $1 AND NOT internal
    UNION ALL SELECT schema_name FROM duckdb_schemas() WHERE database_name = $1 AND NOT internal
    AND schema_name <> 'main'
)
