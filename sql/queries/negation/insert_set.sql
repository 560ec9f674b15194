-- negation/insert_set: one negation set's row, its values bound in the order of the column list.
-- Run by pipelines/negation_sets.py record_set.
INSERT INTO negation_sets (set_hash, name, kind, concept_pack, model_id, vae_sha, height, width, vae_latent,
                           rule, rule_version, n_candidates, n_members, path, manifest, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
