-- 004_model_family: the model family of each generation (issue 14): 'sd' (SD 1.x/2.x) | 'sdxl' | 'sd3'.
-- Append-only: never edit after it lands.
-- Every generation stored before this migration came from the SD 1.x/2.x path (the only one there was).
ALTER TABLE generations ADD COLUMN family VARCHAR;
UPDATE generations SET family = 'sd' WHERE family IS NULL;
