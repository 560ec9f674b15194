-- 005_efficiency: what each batch cost to sample (issue 16). Append-only: never edit after it lands.
-- Written by pipelines/load.py from the batch manifest's `efficiency` entry (pipelines/efficiency.py);
-- NULL for batches generated before this migration and for batches whose images were all reused.
ALTER TABLE batches ADD COLUMN IF NOT EXISTS unet_rows_per_step DOUBLE;   -- UNet rows per denoising step per image (CFG baseline: 2)
ALTER TABLE batches ADD COLUMN IF NOT EXISTS unet_calls_per_step DOUBLE;  -- UNet forwards per step per sample() call (batched CFG: 1)
ALTER TABLE batches ADD COLUMN IF NOT EXISTS peak_mem_bytes BIGINT;       -- torch.cuda.max_memory_allocated over the batch; NULL on CPU
ALTER TABLE batches ADD COLUMN IF NOT EXISTS peak_mem_device VARCHAR;     -- the device that peak was read on (cuda:0); NULL on CPU
ALTER TABLE batches ADD COLUMN IF NOT EXISTS sample_s DOUBLE;             -- seconds in sample() (no PNG / parquet writing)
