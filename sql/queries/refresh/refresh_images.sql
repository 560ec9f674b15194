-- refresh_images: every image a refreshed table may read (refreshed generations and refreshed runs' images).
CREATE OR REPLACE TEMP TABLE refresh_images AS
SELECT generation_id FROM temp.refresh_generations UNION SELECT generation_id FROM temp.refresh_run_images
