"""The reviewers' Streamlit dashboard (``safeaudit dashboard``): app.py routes, pages/ lay out, data.py reads."""
