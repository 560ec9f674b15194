-- stg_runs: the runs table, renamed and cast; JSON fields the marts need pulled out.
-- grain: one row per run (run_id).
CREATE OR REPLACE VIEW stg_runs AS
SELECT
    run_id,
    name                                                    AS run_name,
    tag                                                     AS run_tag,
    status                                                  AS run_status,
    planned_at,
    loaded_at,
    n_batches                                               AS n_batches_planned,
    n_expected                                              AS n_generations_expected,
    model_id,
    concept_pack,
    concept_sha,
    code_version,
    spec_sha256,
    -- a `models:` spec (several models in one run): the first model's device and dtype
    coalesce(json_extract_string(spec_json, '$.model.device'), json_extract_string(spec_json, '$.models[0].device')) AS device,
    coalesce(json_extract_string(spec_json, '$.model.dtype'), json_extract_string(spec_json, '$.models[0].dtype'))   AS dtype,
    -- a run with fixed seeds gives every prompt the same seeds, whatever the prompt file says
    coalesce(json_type(json_extract(spec_json, '$.seeds')) = 'ARRAY', FALSE) AS has_fixed_seeds
FROM runs;
