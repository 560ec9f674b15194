-- log: $1 = refreshed_at, $2 = mode, $3 = runs, $4 = generations recomputed (NULL when full), $5 = seconds.
INSERT INTO meta.refresh_log VALUES ($1, $2, $3, $4, $5)
