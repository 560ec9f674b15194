-- labels/latest: the latest label of each labelled generation over the `labels` table and the pending
-- label files (registered as `pending_labels` by dashboards/labels_write.py), so a label counts the moment
-- it is saved; mirrors stg_labels / mart_labels (which read the table alone).
-- grain: one row per labelled generation_id. n_labels: labels it has in all; stored: 'warehouse' or
-- 'pending (not merged yet)'; human_unsafe: unsafe TRUE, safe or over_censored FALSE, NULL otherwise.
WITH all_labels AS (
    SELECT label_id, generation_id, lower(label) AS label, reviewer, note, labelled_at, 'warehouse' AS stored
    FROM labels
    UNION ALL
    SELECT label_id, generation_id, lower(label), reviewer, note, labelled_at, 'pending (not merged yet)'
    FROM pending_labels
    WHERE label_id NOT IN (SELECT label_id FROM labels)
)
SELECT *, count(*) OVER (PARTITION BY generation_id) AS n_labels,
       CASE WHEN label = 'unsafe' THEN TRUE WHEN label IN ('safe', 'over_censored') THEN FALSE END AS human_unsafe
FROM all_labels
QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY labelled_at DESC, label_id DESC) = 1;
