INSERT INTO {{ rel }} SELECT * FROM temp.{{ fresh }}
