-- readonly/attach: attach one DuckDB file ($1, its path) read-only under the catalog name {{ catalog }}.
-- grain: no rows (a statement). Run by pipelines/readonly.py open_snapshot, the one locked-down reader.
ATTACH $1 AS {{ catalog }} (READ_ONLY);
