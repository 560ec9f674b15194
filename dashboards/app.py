"""safeaudit dashboard: the entry point ``streamlit run`` gets (``safeaudit dashboard`` starts it).

It only routes: page config, ``st.navigation`` over the pages in ``app_pages/``, and one clear message
when the warehouse cannot be read. The folder is deliberately not called ``pages/``: Streamlit still
treats a ``pages/`` folder beside the entry point as an old-style multipage app until the first run calls
``st.navigation``, so the first request of a fresh server to a shared link like ``/review`` would run
that page file alone (no routing, no layout, no error handling), and AppTest does so on every rerun. The warehouse and artifact paths come from ``SAFEAUDIT_WAREHOUSE`` / ``SAFEAUDIT_ARTIFACTS``
(see ``dashboards.connection``); nothing is opened at import.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboards/app.py` puts only dashboards/ on the path
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import streamlit as st  # noqa: E402

from dashboards import connection, filters  # noqa: E402
from pipelines.warehouse import WarehouseError  # noqa: E402

st.set_page_config(page_title="safeaudit", page_icon=":material/shield:", layout="wide")

PAGES = [
    # the default page is served at the root URL (Streamlit ignores a default page's url_path)
    st.Page("app_pages/tradeoff.py", title="Trade-off", icon=":material/show_chart:", default=True),
    st.Page("app_pages/categories.py", title="Categories", icon=":material/grid_on:", url_path="categories"),
    st.Page("app_pages/suites.py", title="Suites", icon=":material/translate:", url_path="suites"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
    st.Page("app_pages/review.py", title="Image review", icon=":material/image_search:", url_path="review"),
    st.Page("app_pages/label_quality.py", title="Labels", icon=":material/fact_check:", url_path="labels"),
    st.Page(
        "app_pages/negation_sets.py", title="Negation sets", icon=":material/block:", url_path="negation-sets"
    ),
]

page = st.navigation(PAGES)
try:
    connection.source()
    try:
        page.run()
    finally:  # also after st.stop(): a page that stopped early still reports ignored link parameters
        filters.finish()
except WarehouseError as exc:
    st.error(str(exc).splitlines()[0])
except duckdb.IOException as exc:  # the loader holds the file and no snapshot has been published yet
    st.error(f"The warehouse cannot be read right now: {str(exc).splitlines()[0]}")
