-- shadow: while one table is recomputed, its input {{ rel }} is seen only for the refreshed keys (a temp view
-- shadows the main object of the same name, also inside the views the SELECT reads).
CREATE OR REPLACE TEMP VIEW {{ rel }} AS
SELECT * FROM temp.{{ tmp }} WHERE {{ col }} IN (SELECT {{ col }} FROM temp.{{ keys }})
