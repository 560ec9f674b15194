-- labels/merge: fold pending reviewer labels (the registered Arrow table `incoming_labels`) into `labels`;
-- a label_id already there is skipped, so a merge is idempotent. Run by pipelines/labels.py merge_labels
-- (on the single writer, during a load).
INSERT OR IGNORE INTO labels (label_id, generation_id, label, reviewer, note, labelled_at)
SELECT label_id, generation_id, label, reviewer, note, labelled_at FROM incoming_labels;
