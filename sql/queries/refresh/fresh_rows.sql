-- fresh_rows: a table's SELECT (bound as $1, parsed by query()) for the refreshed keys, into temp {{ tmp }}.
CREATE OR REPLACE TEMP TABLE {{ tmp }} AS
SELECT * FROM query($1) WHERE {{ col }} IN (SELECT {{ col }} FROM temp.{{ keys }})
