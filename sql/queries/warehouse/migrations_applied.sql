-- migrations_applied: the schema files recorded as applied, in order.
SELECT version FROM schema_migrations ORDER BY version
