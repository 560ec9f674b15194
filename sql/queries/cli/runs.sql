-- cli/runs: every run with its counts and status, oldest first: what `safeaudit runs` prints.
-- grain: one row per run. Columns: run_id, tag, status, planned_at, n_expected, generations, reused.
SELECT r.run_id, r.tag, r.status, r.planned_at, r.n_expected, count(g.generation_id),
       count(g.generation_id) FILTER (WHERE g.reused)
FROM runs r LEFT JOIN generations g USING (run_id)
GROUP BY ALL
ORDER BY r.planned_at;
