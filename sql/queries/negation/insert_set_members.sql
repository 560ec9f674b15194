-- negation/insert_set_members: one negation set's members from the registered Arrow table
-- `incoming_members`, by column name. Run by pipelines/negation_sets.py record_set.
INSERT INTO negation_set_members BY NAME SELECT * FROM incoming_members;
