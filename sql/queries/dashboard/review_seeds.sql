-- dashboard/review_seeds: the seeds one run ($1) generated for one prompt ($2), ascending.
-- grain: one row per seed. Read by dashboards/queries.py review_seeds.
SELECT DISTINCT seed FROM stg_generations WHERE run_id = $1 AND prompt_id = $2 ORDER BY seed;
