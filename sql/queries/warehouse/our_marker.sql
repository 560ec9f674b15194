-- our_marker: 1 when the first migration is recorded in our own bookkeeping table (a safeaudit warehouse).
SELECT count(*) FROM schema_migrations WHERE version = '001_core'
