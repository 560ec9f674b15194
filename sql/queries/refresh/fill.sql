-- fill: a materialised table's SELECT in full (bound as $1, parsed by query()).
INSERT INTO {{ rel }} SELECT * FROM query($1)
