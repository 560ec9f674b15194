"""The DAG run locally: what ``safeaudit audit`` does (SQLite metadata, ``dag.test`` in a child process).

    safeaudit audit --spec S ──▶ airflow_home/ (SQLite, migrated once) ──▶ child process: dag.test(conf)
                                 └── DAGs folder = dags/            ──▶ summary table from the warehouse

The child (``python -m pipelines.airflow_local CONF_JSON RESULT_PATH``) is the only process that imports
airflow; it writes its result (state, per-task tries, the report task's summary) as JSON for the parent.
Imported by the CLI at start-up: no airflow, torch or diffusers at top level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.tasks import REPO, project_path

DAGS_FOLDER = REPO / "dags"
DAG_ID = "safety_audit"
DEFAULT_HOME = REPO / "airflow_home"
GPU_POOL = "gpu"


def airflow_env(
    home: Path = DEFAULT_HOME, base: dict[str, str] | None = None, parallelism: int = 2
) -> dict[str, str]:
    """Environment for an Airflow process on this project: set before airflow is imported."""
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        }
    )
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(parallelism))
    env.setdefault("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", str(parallelism))
    env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "60")
    env.setdefault("AIRFLOW__CORE__HOSTNAME_CALLABLE", "pipelines.tasks.worker_hostname")
    env.setdefault("SAFEAUDIT_RETRY_DELAY_S", "5")  # locally a retry need not wait for a GPU to free up
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def ensure_migrated(env: dict[str, str]) -> bool:
    """``airflow db migrate`` when the SQLite metadata DB is missing or from another Airflow version."""
    from importlib.metadata import version

    home = Path(env["AIRFLOW_HOME"])
    marker = home / ".safeaudit-migrated"
    stamp = f"apache-airflow {version('apache-airflow')}"
    if (home / "airflow.db").exists() and marker.exists() and marker.read_text().strip() == stamp:
        return False
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.write_text(stamp + "\n")
    return True


def ensure_pool(slots: int = 1) -> None:
    """Create the ``gpu`` pool the generate tasks use, when missing (the scheduler skips unknown pools)."""
    from airflow.models.pool import Pool

    if Pool.get_pool(GPU_POOL) is None:
        Pool.create_or_update_pool(GPU_POOL, slots, "GPU slots for generate tasks", include_deferred=False)


def run_dag_test(conf: dict[str, Any]) -> dict[str, Any]:
    """Run ``safety_audit`` once in this process with ``dag.test`` (airflow must be configured already)."""
    from airflow.dag_processing.dagbag import DagBag

    ensure_pool()
    bag = DagBag(dag_folder=str(DAGS_FOLDER / "safety_audit.py"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    started = time.perf_counter()
    dr = bag.get_dag(DAG_ID).test(run_conf=conf)
    return dag_run_result(dr, time.perf_counter() - started)


def dag_run_result(dr, wall_s: float | None = None) -> dict[str, Any]:
    """State, per-task tries and the report task's summary of a finished DAG run (from the metadata DB)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dr.get_task_instances(session=session)
        tasks = [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": str(ti.state),
                "try_number": ti.try_number,
                "hostname": ti.hostname,
                "rendered_map_index": ti.rendered_map_index,
            }
            for ti in tis
        ]
        summary = None
        row = session.scalars(
            XComModel.get_many(run_id=dr.run_id, key="return_value", task_ids="report", dag_ids=DAG_ID)
        ).first()
        if row is not None:
            summary = XComModel.deserialize_value(row)
    return {
        "dag_run_id": dr.run_id,
        "state": str(dr.state),
        "wall_s": wall_s,
        "tasks": tasks,
        "summary": summary,
    }


def _child_main(argv: list[str]) -> int:
    """``python -m pipelines.airflow_local CONF_JSON RESULT_PATH``: the process that imports airflow."""
    conf, result_path = json.loads(argv[0]), Path(argv[1])
    result = run_dag_test(conf)
    result_path.write_text(json.dumps(result, indent=1, default=str))
    return 0 if result["state"] == "success" else 1


def audit(
    spec: str | Path,
    tag: str | None = None,
    home: Path = DEFAULT_HOME,
    parallelism: int = 2,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the DAG on a spec through Airflow (SQLite metadata under ``home``); return the child's result."""
    from pipelines.runspec import load_spec

    spec_path = Path(spec).resolve() if Path(spec).exists() else project_path(spec)
    load_spec(spec_path, dict(overrides or {}) | ({"tag": tag} if tag else {}))  # fail fast, in one line
    env = airflow_env(Path(home).resolve(), parallelism=parallelism)
    ensure_migrated(env)
    conf = {"spec": str(spec_path), "tag": tag, "overrides": overrides or {}}
    result_path = Path(env["AIRFLOW_HOME"]) / "last_audit.json"
    result_path.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.airflow_local", json.dumps(conf), str(result_path)],
        env=env,
        cwd=REPO,
    )
    if not result_path.exists():
        raise RuntimeError(
            f"the Airflow run exited with {proc.returncode} before finishing (see the log above)"
        )
    return json.loads(result_path.read_text())


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
