-- validation/batches: manifest items against generation rows per batch of one run ($1).
-- grain: one row per batch id seen in `batches` or `generations` (n_items -1: no batch row).
-- Read by pipelines/expectations/frames.py (frame `batches`).
WITH b AS (SELECT batch_id, n_items FROM batches WHERE run_id = $1),
g AS (SELECT batch_id, count(*) AS n_generations FROM generations WHERE run_id = $1 GROUP BY batch_id)
SELECT coalesce(b.batch_id, g.batch_id) AS batch_id, coalesce(b.n_items, -1) AS n_items,
       coalesce(g.n_generations, 0) AS n_generations
FROM b FULL OUTER JOIN g USING (batch_id) ORDER BY batch_id;
