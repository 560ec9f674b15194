-- run_signature: per run, the row count and sum of row hashes (every column) of staging view {{ src }}
-- (its name again as $1), appended to {{ dest }} (temp.run_signatures_now or meta.run_signatures).
INSERT INTO {{ dest }}
SELECT $1 AS source, run_id, count(*) AS n, sum(hash(*COLUMNS(*))) AS sig
FROM {{ src }}
GROUP BY run_id
