-- changed_sources: (staging view, run) whose row count or hash sum differs from the last refresh.
CREATE OR REPLACE TEMP TABLE changed_sources AS
SELECT DISTINCT coalesce(a.source, b.source) AS source, coalesce(a.run_id, b.run_id) AS run_id
FROM temp.run_signatures_now a
FULL JOIN meta.run_signatures b ON a.source = b.source AND a.run_id IS NOT DISTINCT FROM b.run_id
WHERE a.n IS DISTINCT FROM b.n OR a.sig IS DISTINCT FROM b.sig
