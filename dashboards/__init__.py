"""The reviewers' Streamlit dashboard (``safeaudit dashboard``): app.py routes, app_pages/ lay out, data.py reads."""
