"""Dashboard fixtures: the extended fixture warehouse (built once), per-test copies, an AppTest factory."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests.sql.fixtures` / `tests.dashboards.dashboard_fixture` importable
    sys.path.insert(0, str(REPO))

from tests.dashboards.dashboard_fixture import DashboardWarehouse, build_dashboard_warehouse  # noqa: E402

APP = REPO / "dashboards" / "app.py"
PAGES = {
    "tradeoff": "app_pages/tradeoff.py",
    "categories": "app_pages/categories.py",
    "suites": "app_pages/suites.py",
    "runs": "app_pages/runs.py",
    "review": "app_pages/review.py",
    "labels": "app_pages/label_quality.py",
    "negation_sets": "app_pages/negation_sets.py",
}


@pytest.fixture(scope="session")
def dash_warehouse(tmp_path_factory) -> DashboardWarehouse:
    """Read-only for tests: anything that writes labels uses ``dash_copy``."""
    return build_dashboard_warehouse(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture()
def dash_copy(dash_warehouse, tmp_path) -> DashboardWarehouse:
    """The warehouse files copied to a fresh folder (own labels dir); artifacts stay shared (read-only)."""
    target = tmp_path / "warehouse"
    target.mkdir()
    for name in ("fixture.duckdb", "fixture.snapshot.duckdb"):
        shutil.copy2(dash_warehouse.path.parent / name, target / name)
    return replace(dash_warehouse, path=target / "fixture.duckdb")


@pytest.fixture()
def use_warehouse(monkeypatch):
    """Point the dashboard (data layer, AppTest) at a warehouse: ``use_warehouse(wh)``."""
    from dashboards.connection import ENV_ARTIFACTS, ENV_WAREHOUSE

    def _use(wh: DashboardWarehouse) -> DashboardWarehouse:
        monkeypatch.setenv(ENV_WAREHOUSE, str(wh.path))
        monkeypatch.setenv(ENV_ARTIFACTS, str(wh.artifacts))
        return wh

    return _use


@pytest.fixture()
def app_page():
    """``app_page("runs", run=..., rule=...)``: an AppTest on one page with query parameters, run once."""
    from streamlit.testing.v1 import AppTest

    def _open(page: str, timeout: float = 120, **params: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=timeout)
        at.run()
        assert not at.exception, at.exception
        if page != "tradeoff":
            at.switch_page(PAGES[page])
        at.query_params.update(params)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open
