-- dashboard/latest_labels: the latest label of each labelled generation, with what was generated.
-- grain: one row per labelled generation_id, newest first. Reads `latest` (the rows of
-- labels/latest.sql, registered by dashboards/labels_write.py latest_labels) and stg_generations.
SELECT l.generation_id, l.label, l.reviewer, l.note, l.labelled_at, l.n_labels, l.stored, l.label_id,
       g.method_label, g.level, g.knob, g.prompt_text
FROM latest l
LEFT JOIN (SELECT generation_id, any_value(method_label) AS method_label, any_value(level) AS level,
                  any_value(knob) AS knob, any_value(prompt_text) AS prompt_text
           FROM stg_generations GROUP BY generation_id) g USING (generation_id)
ORDER BY l.labelled_at DESC, l.label_id DESC;
