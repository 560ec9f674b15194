-- negation/delete_set_members: drop one negation set's ($1 set_hash) members before it is recorded again.
-- Run by pipelines/negation_sets.py record_set (one transaction with the set row).
DELETE FROM negation_set_members WHERE set_hash = $1;
