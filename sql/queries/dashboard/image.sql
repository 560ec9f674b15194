-- dashboard/image: the stored thumbnail and the image_uri of one generation ($1).
-- grain: at most one row. Read by dashboards/images.py served_image (never sent unblurred when flagged).
SELECT thumbnail, image_uri FROM generations WHERE generation_id = $1 LIMIT 1;
