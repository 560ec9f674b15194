-- run_signatures_empty: this moment's per-run signatures, filled source by source (run_signature.sql).
CREATE OR REPLACE TEMP TABLE run_signatures_now (source VARCHAR NOT NULL, run_id VARCHAR, n BIGINT NOT NULL, sig HUGEINT NOT NULL)
