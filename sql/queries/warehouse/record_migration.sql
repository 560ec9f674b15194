-- record_migration: $1 = version (the schema file's stem), $2 = applied_at.
INSERT INTO schema_migrations VALUES ($1, $2)
