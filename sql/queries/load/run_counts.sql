-- load/run_counts: generation rows of one run ($1), and how many of them were reused.
-- grain: one row. Read by pipelines/load.py load_run (what `safeaudit load` reports).
SELECT count(*), count(*) FILTER (WHERE reused) FROM generations WHERE run_id = $1;
