-- clear: a full refresh empties a materialised table, then fills it from its SELECT (fill.sql).
DELETE FROM {{ rel }}
