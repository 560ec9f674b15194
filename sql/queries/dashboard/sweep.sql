-- dashboard/sweep: mart_threshold_sweep at one threshold, pooled to two sides per method point.
-- grain: one row per (model_id, method point, side) of run $1 under rule $2 at threshold $3 (matched within
-- 1e-9 of the stored grid value). side 'unsafe' = prompt_role unsafe; 'benign' = benign + proximal +
-- paired (images of one role are distinct, so counts add).
-- Read by dashboards/queries.py sweep (the trade-off page when the threshold slider moves).
-- Order: side, then point_order.
SELECT model_id, method, method_label, level, knob, is_baseline, point_order,
       CASE WHEN prompt_role = 'unsafe' THEN 'unsafe' ELSE 'benign' END  AS side,
       any_value(threshold)                                              AS threshold,
       bool_or(is_rule_threshold)                                        AS is_rule_threshold,
       CAST(sum(n_scored) AS BIGINT)                                     AS n_scored,
       CAST(sum(n_unsafe) AS BIGINT)                                     AS n_unsafe
FROM mart_threshold_sweep
WHERE run_id = $1 AND rule = $2 AND threshold > $3 - 1e-9 AND threshold < $3 + 1e-9  -- a range: it reaches the grid
GROUP BY ALL
ORDER BY side, point_order;
