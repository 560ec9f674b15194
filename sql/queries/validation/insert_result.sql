-- validation/insert_result: one expectation's result row into `validations`, in column order
-- (pipelines/validate.py builds the rows). Run by pipelines/validate.py (executemany, one transaction).
INSERT INTO validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);
