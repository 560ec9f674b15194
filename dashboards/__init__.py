"""The reviewers' Streamlit dashboard (``safeaudit dashboard``): app.py routes, app_pages/ lay out; connection
(the snapshot reader), queries (named SQL), axes (the trade-off view), image_serving, reviewer_labels and
run_compare do the work."""
