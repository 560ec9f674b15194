-- stg_batches: the batches table renamed; the method point as the marts group it.
-- grain: one row per batch (batch_id).
CREATE OR REPLACE VIEW stg_batches AS
SELECT
    batch_id,
    run_id,
    method,
    coalesce(method_label, method)               AS method_label,
    level,
    knob,
    config_hash,
    n_items,
    n_generated,
    n_reused,
    wall_s                                       AS batch_wall_s,
    worker,
    finished_at,
    loaded_at,
    unet_rows_per_step,                          -- 005_efficiency (pipelines/efficiency.py)
    unet_calls_per_step,
    peak_mem_bytes,
    peak_mem_device,
    sample_s
FROM batches;
