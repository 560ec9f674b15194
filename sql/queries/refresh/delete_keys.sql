-- delete_keys: a materialised table's rows for the refreshed keys.
DELETE FROM {{ rel }} WHERE {{ col }} IN (SELECT {{ col }} FROM temp.{{ keys }})
