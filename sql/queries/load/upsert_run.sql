-- load/upsert_run: insert a planned run, or refresh its batch and item counts when it is there already.
-- grain: one row of `runs`. Parameters in column order (pipelines/load.py _run_row): run_id, name, tag,
-- spec_json, spec_sha256, concept_pack, concept_sha, model_id, code_version, planned_at, n_batches,
-- n_expected. Run by pipelines/load.py load_run.
INSERT INTO runs (run_id, name, tag, spec_json, spec_sha256, concept_pack, concept_sha, model_id,
                  code_version, planned_at, n_batches, n_expected)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET n_batches = excluded.n_batches, n_expected = excluded.n_expected;
