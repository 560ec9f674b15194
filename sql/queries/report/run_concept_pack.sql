-- report/run_concept_pack: the concept pack (name@version) a run was planned with.
-- grain: at most one row, for run $1 (stg_runs). Read by pipelines/report.py choose_rule (toy packs prefer
-- the toy rule).
SELECT concept_pack FROM stg_runs WHERE run_id = $1;
