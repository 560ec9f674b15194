-- validation/set_status: the run's ($2) status after validation ($1: validated | failed | quarantined ...).
-- Run by pipelines/validate.py in the same transaction as the result rows.
UPDATE runs SET status = $1 WHERE run_id = $2;
