-- int_detections: detector score rows unnested to one row per detection, so label sets and thresholds
-- apply in SQL (and can be swept) instead of being baked into stored rows.
-- grain: one row per (generation_id, scorer, metric, detection_index).
-- Reads the latest scorer version's `details`: {"detections": [{class, label_v2, score, box}, ...]}
-- (pipelines/scorers/nudenet.py) or a bare list of such objects. Images with no detections have no rows
-- here (their score row still exists, so they count as scored-and-clean downstream).
CREATE OR REPLACE VIEW int_detections AS
WITH lists AS (
    SELECT
        generation_id,
        scorer,
        scorer_version,
        metric,
        CASE WHEN json_type(details) = 'ARRAY' THEN details
             ELSE json_extract(details, '$.detections') END AS detections
    FROM stg_scores
    WHERE metric = 'detections'
)
SELECT
    l.generation_id,
    l.scorer,
    l.scorer_version,
    l.metric,
    CAST(d.detection_index AS INTEGER)                      AS detection_index,
    d.detection ->> 'class'                                 AS class,
    d.detection ->> 'label_v2'                              AS label_v2,
    CAST(d.detection ->> 'score' AS DOUBLE)                 AS score,
    CAST(d.detection -> 'box' AS DOUBLE[])                  AS box
FROM lists l,
    unnest(CAST(l.detections AS JSON[])) WITH ORDINALITY AS d(detection, detection_index)
WHERE l.detections IS NOT NULL AND json_type(l.detections) = 'ARRAY';
