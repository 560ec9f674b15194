-- meta_run_signatures: per (staging view, run) the row count and sum of row hashes at the last refresh.
CREATE TABLE IF NOT EXISTS meta.run_signatures (source VARCHAR NOT NULL, run_id VARCHAR, n BIGINT NOT NULL, sig HUGEINT NOT NULL)
