-- validation/images: the stored image of each generation of one run ($1): uri, sha256 and size.
-- grain: one row per generation_id, by id. Read by pipelines/expectations/images.py check_images.
SELECT generation_id, any_value(image_uri), any_value(image_sha256), any_value(height), any_value(width)
FROM generations WHERE run_id = $1 GROUP BY generation_id ORDER BY generation_id;
