-- validation/rebuilt: each planned method point's stored config hashes against the hash rebuilt in Python.
-- grain: one row per planned point of run $1. Reads the registered `rebuilt_points` (point, rebuilt_hash,
-- error). Read by pipelines/expectations/frames.py (frame `rebuilt`, opt-in).
WITH stored AS (
    SELECT g.method || coalesce('.' || g.method_label, '') || '-' || CASE WHEN g.knob IS NULL THEN g.level ELSE 'knob' || g.knob::VARCHAR END AS point, list(DISTINCT g.config_hash ORDER BY g.config_hash) AS h
    FROM generations g WHERE g.run_id = $1 GROUP BY point)
SELECT r.method || coalesce('.' || r.method_label, '') || '-' || CASE WHEN r.knob IS NULL THEN r.level ELSE 'knob' || r.knob::VARCHAR END AS point, array_to_string(coalesce(s.h, []), ',') AS stored_hashes,
       r.rebuilt_hash, r.error
FROM rebuilt_points r LEFT JOIN stored s ON s.point = r.method || coalesce('.' || r.method_label, '') || '-' || CASE WHEN r.knob IS NULL THEN r.level ELSE 'knob' || r.knob::VARCHAR END
ORDER BY point;
