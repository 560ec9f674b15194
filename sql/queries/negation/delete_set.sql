-- negation/delete_set: drop one negation set's ($1 set_hash) row before it is recorded again.
-- Run by pipelines/negation_sets.py record_set.
DELETE FROM negation_sets WHERE set_hash = $1;
