-- negation/candidate_generations: one placeholder generation row per candidate image (the registered table
-- `ids`), so the rule views (which read images through stg_generations) can flag them.
-- Run by pipelines/negation_sets.py apply_rule on a scratch in-memory warehouse, never the real one.
INSERT INTO generations (run_id, batch_id, generation_id, prompt_id, prompt, seed, image_index,
                         method, level, method_config, config_hash, scheduler, steps, guidance, height, width,
                         model_id, dtype, packages, image_uri, image_sha256, reused, created_at)
SELECT 'negation-set', 'candidates', generation_id, generation_id, '', 0, 0,
       'baseline', 'off', '{}', '', 'none', 0, 0, 0, 0,
       '', '', '{}', '', '', FALSE, current_timestamp
FROM ids;
