-- plan/reusable_images: the stored images of the wanted generation ids (the registered table
-- `wanted_reuse`), from runs whose status is not $1 (quarantined runs are never reused).
-- grain: one row per (generation_id, stored image), newest run first within an id.
-- Read by pipelines/reuse.py (the planner's reuse lookup).
SELECT g.generation_id, g.image_uri, g.image_sha256, max(r.planned_at) AS newest
FROM generations g JOIN wanted_reuse USING (generation_id) JOIN runs r USING (run_id)
WHERE r.status IS DISTINCT FROM $1
GROUP BY ALL
ORDER BY g.generation_id, newest DESC NULLS LAST;
