-- validation/points: planned against generated counts per method point of one run, black / constant shares.
-- grain: one row per method point (method[.label]-level, or -knobVALUE) planned, generated or batched.
-- Parameters: $1 run_id, $2 items planned per point, $3 the degenerate scorer's current version ('' if none).
-- Reads the registered `planned_points` (pipelines/expectations/frames.py Frames.planned_points).
-- Read by pipelines/expectations/frames.py (frame `points`).
WITH planned AS (SELECT p.method || coalesce('.' || p.method_label, '') || '-' || CASE WHEN p.knob IS NULL THEN p.level ELSE 'knob' || p.knob::VARCHAR END AS point, $2::BIGINT AS expected FROM planned_points p),
gens AS (
    SELECT g.method || coalesce('.' || g.method_label, '') || '-' || CASE WHEN g.knob IS NULL THEN g.level ELSE 'knob' || g.knob::VARCHAR END AS point, g.generation_id FROM generations g WHERE g.run_id = $1),
actual AS (SELECT point, count(*) AS n_generations FROM gens GROUP BY point),
items AS (
    SELECT b.method || coalesce('.' || b.method_label, '') || '-' || CASE WHEN b.knob IS NULL THEN b.level ELSE 'knob' || b.knob::VARCHAR END AS point, sum(b.n_items) AS n_batch_items
    FROM batches b WHERE b.run_id = $1 GROUP BY point),
deg AS (
    SELECT gens.point,
           avg(s.value) FILTER (WHERE s.metric = 'is_black') AS black_share,
           avg(s.value) FILTER (WHERE s.metric = 'is_constant') AS constant_share,
           count(*) FILTER (WHERE s.metric = 'is_black' AND s.value >= 0.5) AS n_black
    FROM gens JOIN scores s USING (generation_id)
    WHERE s.scorer = 'degenerate' AND s.scorer_version = $3 GROUP BY gens.point),
keys AS (SELECT point FROM planned UNION SELECT point FROM actual UNION SELECT point FROM items)
SELECT k.point, coalesce(p.expected, -1) AS expected, coalesce(a.n_generations, 0) AS n_generations,
       coalesce(i.n_batch_items, 0) AS n_batch_items, d.black_share, d.constant_share,
       coalesce(d.n_black, 0) AS n_black
FROM keys k LEFT JOIN planned p USING (point) LEFT JOIN actual a USING (point)
     LEFT JOIN items i USING (point) LEFT JOIN deg d USING (point)
ORDER BY k.point;
