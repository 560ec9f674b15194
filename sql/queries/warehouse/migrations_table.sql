-- migrations_table: the bookkeeping of applied schema files (sql/schema), created on first open.
CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)
