-- validation/configs: the stored method configs of one run ($1), with their batch's config and hash.
-- grain: one row per distinct (batch, stored method config, hash). Read by pipelines/expectations/frames.py
-- (frame `configs`: JSON parse, hash, method and batch agreement are checked in Python).
SELECT DISTINCT g.batch_id, g.method, g.method_config::VARCHAR AS method_config, g.config_hash,
       b.config_hash AS batch_config_hash, b.method_config::VARCHAR AS batch_method_config
FROM generations g LEFT JOIN batches b ON b.batch_id = g.batch_id AND b.run_id = g.run_id
WHERE g.run_id = $1 ORDER BY g.batch_id;
