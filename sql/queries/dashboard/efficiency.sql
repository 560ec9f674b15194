-- dashboard/efficiency: mart_efficiency for one run ($1): what each method point costs to sample.
-- grain: one row per (family, model_id, method point). Read by dashboards/queries.py efficiency.
-- Order: point_order (baseline first).
SELECT * FROM mart_efficiency WHERE run_id = $1 ORDER BY point_order;
