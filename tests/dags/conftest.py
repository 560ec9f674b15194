"""Airflow for DAG tests: a throw-away AIRFLOW_HOME with a migrated SQLite DB, set before airflow is imported.

``airflow db migrate`` costs ~10 s, so one migrated database per Airflow version is kept under
``.cache/airflow-template-<version>/`` and copied into each session's home.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from pipelines import airflow_local, tasks

REPO = Path(__file__).resolve().parents[2]
TINY_SPEC = REPO / "runspecs" / "tiny.yaml"


@pytest.fixture(scope="session")
def migrated_home():
    """``migrated_home(path)``: make ``path`` an AIRFLOW_HOME with a migrated SQLite DB (copied from a cache)."""
    template = REPO / ".cache" / f"airflow-template-{version('apache-airflow')}"
    template.mkdir(parents=True, exist_ok=True)
    with open(template / ".lock", "w") as lock:  # two test sessions at once must not migrate one file twice
        fcntl.flock(lock, fcntl.LOCK_EX)
        airflow_local.ensure_migrated(airflow_local.airflow_env(template))

    def make(home: Path) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        for name in ("airflow.db", ".safeaudit-migrated"):
            shutil.copy2(template / name, home / name)
        return home

    return make


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory, migrated_home) -> Path:
    """Configure Airflow for this test process (SQLite under tmp, DAGs folder = dags/) and migrate once."""
    home = migrated_home(tmp_path_factory.mktemp("airflow_home"))
    env = airflow_local.airflow_env(home, parallelism=2)
    env["SAFEAUDIT_RETRY_DELAY_S"] = "1"  # read when the DAG file is parsed: retries in tests wait 1 s
    env[tasks.FAULTS_ENV] = str(tmp_path_factory.mktemp("faults"))
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        pytest.fail("airflow was imported before the DAG tests configured it (import it inside tests only)")
    os.environ.update(env)
    return home


@pytest.fixture(scope="session")
def faults_dir(airflow_home) -> Path:
    return Path(os.environ[tasks.FAULTS_ENV])


@pytest.fixture(scope="session")
def tiny_conf():
    """``tiny_conf(out, tag=None)``: run conf for the tiny spec with its outputs under ``out``."""
    scorers = yaml.safe_load(TINY_SPEC.read_text())["scorers"]

    def make(out: Path, tag: str | None = None) -> dict:
        output = {
            "artifacts": str(out / "artifacts"),
            "warehouse": str(out / "warehouse" / "safeaudit.duckdb"),
        }
        return {"spec": str(TINY_SPEC), "tag": tag, "overrides": {"output": output, "scorers": scorers}}

    return make
