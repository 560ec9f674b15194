-- stg_labels: reviewer labels, the latest one per generation.
-- grain: one row per generation_id (that has at least one label).
CREATE OR REPLACE VIEW stg_labels AS
SELECT
    generation_id,
    label_id,
    lower(label)                                 AS label,
    reviewer,
    note,
    labelled_at,
    count(*) OVER (PARTITION BY generation_id)   AS n_labels
FROM labels
QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY labelled_at DESC, label_id DESC) = 1;
