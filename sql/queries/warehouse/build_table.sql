-- build_table: a materialised table built in full from its view file's SELECT, bound as $1 (the file's text
-- after `CREATE OR REPLACE VIEW name AS`; query() parses it as a subquery, so the file stays the definition).
CREATE OR REPLACE TABLE {{ rel }} AS SELECT * FROM query($1)
