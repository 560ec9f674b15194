"""Fixture warehouse for the SQL tests: built once per session on a real DuckDB file (read it, never write it).

Tests that change the warehouse (threshold sweeps) build their own copy with ``build_fixture_warehouse``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests.sql.fixtures` importable under a bare `pytest` too
    sys.path.insert(0, str(REPO))

from tests.sql.fixtures import FixtureWarehouse, build_fixture_warehouse  # noqa: E402


@pytest.fixture(scope="session")
def fixture_warehouse(tmp_path_factory) -> FixtureWarehouse:
    return build_fixture_warehouse(tmp_path_factory.mktemp("warehouse") / "fixture.duckdb")


@pytest.fixture()
def con(fixture_warehouse):
    from pipelines.warehouse import reader

    c = reader(fixture_warehouse.path)
    yield c
    c.close()
