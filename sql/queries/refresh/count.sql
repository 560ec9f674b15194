-- count: rows of a temp table.
SELECT count(*) FROM temp.{{ tmp }}
