-- validation/items_by_seeds: distinct (prompt text, seed) pairs of one run ($1) whose spec lists its seeds ($2).
-- grain: one row, the count. Read by pipelines/expectations/frames.py Frames.items_per_point.
SELECT count(*) FROM (SELECT DISTINCT p.prompt, s FROM run_prompts p, unnest($2::BIGINT[]) t(s) WHERE p.run_id = $1);
