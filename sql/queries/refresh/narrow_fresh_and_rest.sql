-- narrow_fresh_and_rest: a table refreshed just now: its new rows (temp.{{ fresh }}) and, from the table itself,
-- the rows of the other wanted keys (in temp.{{ keys }} but not in temp.{{ done }}).
CREATE OR REPLACE TEMP TABLE {{ tmp }} AS
SELECT * FROM temp.{{ fresh }}
UNION ALL
SELECT * FROM {{ rel }}
WHERE {{ col }} IN (SELECT {{ col }} FROM temp.{{ keys }} EXCEPT SELECT {{ col }} FROM temp.{{ done }})
