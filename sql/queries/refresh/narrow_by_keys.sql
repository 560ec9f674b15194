-- narrow_by_keys: the rows of {{ rel }} whose {{ col }} is in temp.{{ keys }}, as temp table {{ tmp }}.
CREATE OR REPLACE TEMP TABLE {{ tmp }} AS
SELECT * FROM {{ rel }} WHERE {{ col }} IN (SELECT {{ col }} FROM temp.{{ keys }})
