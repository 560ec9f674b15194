-- dashboard/run_models: the (family, model_id) pairs one run ($1) audited, from mart_tradeoff.
-- grain: one row per model of the run. Read by dashboards/queries.py run_models (the model picker).
SELECT DISTINCT family, model_id FROM mart_tradeoff WHERE run_id = $1 ORDER BY family, model_id;
