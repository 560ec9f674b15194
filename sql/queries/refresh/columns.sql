-- columns: the column names of a table or view ($1) of the current database's main schema.
SELECT column_name FROM information_schema.columns
WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = $1
