-- load/insert_run_prompts: one run's prompts from the registered Arrow table `incoming_prompts`, by column name.
-- Run by pipelines/load.py load_run.
INSERT INTO run_prompts BY NAME SELECT * FROM incoming_prompts;
