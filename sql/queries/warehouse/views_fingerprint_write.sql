-- views_fingerprint_write: $1 = fingerprint, $2 = created_at.
INSERT INTO meta.views_state VALUES ($1, $2)
