-- validation/items_by_count: distinct (prompt text, seed) pairs of one run ($1) seeded from each prompt's seed
-- (default $2) for $3 images per prompt. grain: one row, the count.
-- Read by pipelines/expectations/frames.py Frames.items_per_point.
SELECT count(*) FROM (SELECT DISTINCT p.prompt, coalesce(p.seed, $2) + k FROM run_prompts p, range($3) t(k) WHERE p.run_id = $1);
