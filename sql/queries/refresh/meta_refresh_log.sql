-- meta_refresh_log: one row per refresh that did something (mode: rebuild | incremental | full: <reason>).
CREATE TABLE IF NOT EXISTS meta.refresh_log (
    refreshed_at TIMESTAMP NOT NULL, mode VARCHAR NOT NULL, n_runs BIGINT, n_generations BIGINT, seconds DOUBLE
)
