-- stg_scores: score rows, the latest scorer version only.
-- grain: one row per (generation_id, scorer, metric).
-- "Latest" = the most recently scored version (scored_at), ties broken by the larger version string; a
-- re-score with a new scorer version therefore replaces the old values in every view, while the table
-- keeps both.
--
-- materialized: table refreshed by generation_id (narrowed inputs: scores)
-- A TABLE filled from this SELECT by the writer (pipelines/warehouse.py refresh), not a view.
-- A generation's rows depend only on its own score rows, so a refresh recomputes just the generations whose
-- score rows were appended.
CREATE OR REPLACE VIEW stg_scores AS
SELECT
    generation_id,
    scorer,
    scorer_version,
    model_sha256,
    metric,
    value,
    details,
    batch_id                                     AS score_batch_id,
    scored_at,
    count(*) OVER (PARTITION BY generation_id, scorer, metric) AS n_versions
FROM scores
QUALIFY row_number() OVER (
    PARTITION BY generation_id, scorer, metric ORDER BY scored_at DESC, scorer_version DESC
) = 1;
