-- dashboard/negation_sets: mart_negation_sets, newest set first.
-- grain: one row per (set, run that used it). Read by dashboards/negation_data.py sets.
SELECT * FROM mart_negation_sets ORDER BY created_at DESC, set_hash, run_id;
