-- run_signatures_keep: after an incremental refresh, the signatures _changes measured become the state.
INSERT INTO meta.run_signatures SELECT * FROM temp.run_signatures_now
