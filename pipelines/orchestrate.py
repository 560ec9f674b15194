"""Airflow glue: what the ``safety_audit`` DAG's tasks call, and ``safeaudit audit`` (the DAG run locally).

    safeaudit audit --spec S ──▶ airflow_home/ (SQLite, migrated once) ──▶ child process: dag.test(conf)
                                 └── DAGs folder = dags/            ──▶ summary table from the warehouse

The DAG file stays thin; the few decisions that are not pipeline logic live here: resolving a spec path
and local output paths against the project (workers run in any working directory), the run's gates
(exact counts, then Great Expectations when ``pipelines.validate`` is present), a fault-injection point
for retry tests, and a hostname callable so two workers on one machine stay distinguishable.

This module is imported by the CLI at start-up: it must not import airflow, torch or diffusers at top level.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"
DAG_ID = "safety_audit"
DEFAULT_HOME = REPO / "airflow_home"
GPU_POOL = "gpu"
FAULTS_ENV = "SAFEAUDIT_FAULTS_DIR"  # a folder; a file <stage>.once in it makes <stage> fail once
WORKER_NAME_ENV = "SAFEAUDIT_WORKER_NAME"

log = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised once by :func:`fault_point` when a test armed it."""


class ValidationFailed(RuntimeError):
    """The run failed a gate: the DAG run fails and the run stays out of the marts."""


# -- what the DAG's tasks call -----------------------------------------------------------------------------
def project_path(path: str | Path) -> Path:
    """A path as given when absolute, else relative to the project root (not to the worker's cwd)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO / p


def _project_uri(uri: str) -> str:
    return uri if "://" in uri else str(project_path(uri))


def plan_for_dag(
    spec: str, tag: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Plan a run for the DAG; return what downstream tasks need (ids, paths, counts: XCom-sized)."""
    from pipelines.plan import plan_run
    from pipelines.runner import preflight
    from pipelines.runspec import OutputSpec, load_spec

    run_spec = load_spec(project_path(spec), dict(overrides or {}) | ({"tag": tag} if tag else {}))
    output = OutputSpec(
        artifacts=_project_uri(run_spec.output.artifacts),
        warehouse=str(project_path(run_spec.output.warehouse)),
    )
    run_spec = run_spec.model_copy(update={"output": output})
    preflight(run_spec)
    plan = plan_run(run_spec)
    return {
        "run_id": plan.run_id,
        "name": plan.name,
        "tag": plan.tag,
        "artifacts": output.artifacts,
        "warehouse": output.warehouse,
        "batch_ids": list(plan.batch_ids),
        "n_expected": plan.n_expected,
        "n_reused": plan.n_reused,
    }


def batch_label(batch_id: str) -> str:
    """``safree-strong-1a2b3c4d5e`` → ``safree/strong``: the mapped task's name in the Airflow UI (in a
    run with several models ``tiny-sdxl--safree-strong-…`` → ``tiny-sdxl/safree/strong``)."""
    model, _, rest = batch_id.rpartition("--")
    key = rest.rsplit("-", 1)[0]
    method, _, point = key.rpartition("-")
    label = f"{method}/{point}" if method else key
    return f"{model}/{label}" if model else label


def fault_point(stage: str, key: str = "") -> None:
    """Fail once where a test armed it: ``$SAFEAUDIT_FAULTS_DIR/<stage>.once`` exists.

    The file is renamed to ``<stage>.fired`` before raising; rename is atomic, so among concurrent
    workers exactly one fails, once. Without the environment variable this is a no-op.
    """
    folder = os.environ.get(FAULTS_ENV)
    if not folder:
        return
    armed = Path(folder) / f"{stage}.once"
    try:
        armed.rename(armed.with_suffix(".fired"))
    except FileNotFoundError:
        return
    raise InjectedFault(f"injected failure at {stage} {key} (armed by {armed})")


def validate_gate(run: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    """Fail the run unless every batch loaded with exactly the planned rows, then run the data checks."""
    problems = []
    if counts.get("batches_pending"):
        problems.append(f"{counts['batches_pending']} batches not loaded")
    if counts.get("generations") != run["n_expected"]:
        problems.append(f"{counts.get('generations')} generations loaded, {run['n_expected']} planned")
    if problems:
        raise ValidationFailed(f"run {run['run_id']}: " + "; ".join(problems))
    out = {
        "run_id": run["run_id"],
        "generations": counts["generations"],
        "reused": counts["reused"],
        "generated_now": counts["generations"] - counts["reused"],
        "checks": "counts",
    }
    if importlib.util.find_spec("pipelines.validate") is None:
        log.warning("pipelines.validate is not present: data checks skipped (counts checked)")
        return out
    from pipelines.validate import validate_run

    result = validate_run(run["warehouse"], run["run_id"])  # raises, or returns a failed result
    if isinstance(result, dict) and any(result.get(k) is False for k in ("success", "passed", "ok")):
        raise ValidationFailed(f"run {run['run_id']} failed validation (quarantined): {_scalars(result)}")
    return out | {
        "checks": "counts+expectations",
        "validation": _scalars(result) if isinstance(result, dict) else {},
    }


def report_step(run: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
    """Summarise the run (reuse included) and write its report (CSV + Markdown) beside its artifacts."""
    summary = {
        "run_id": run["run_id"],
        "warehouse": run["warehouse"],
        "expected": run["n_expected"],
        "generations": validation["generations"],
        "reused": validation["reused"],
        "generated_now": validation["generated_now"],
    }
    log.info(
        "run %s: %d images, %d reused, %d generated now",
        run["run_id"],
        summary["generations"],
        summary["reused"],
        summary["generated_now"],
    )
    if importlib.util.find_spec("pipelines.report") is None:
        log.warning("pipelines.report is not present: no report written")
        return summary
    from pipelines.report import build_report, write_report

    # the report is local files; with object-store artifacts it goes to the project's artifacts/ folder
    root = Path(run["artifacts"]) if "://" not in run["artifacts"] else project_path("artifacts")
    paths = write_report(build_report(run["warehouse"], run["run_id"]), root / run["run_id"] / "report")
    return summary | {"report": str(paths[-1])}


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    """The XCom-safe part of a result dict: scalars only."""
    return {k: v for k, v in d.items() if isinstance(v, str | int | float | bool | type(None))}


def worker_hostname() -> str:
    """``core.hostname_callable``: the worker's given name, else the FQDN (two workers on one host differ)."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


# -- running the DAG locally (SQLite metadata, dag.test) ------------------------------------------------
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
    env.setdefault("AIRFLOW__CORE__HOSTNAME_CALLABLE", "pipelines.orchestrate.worker_hostname")
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
    """``python -m pipelines.orchestrate CONF_JSON RESULT_PATH``: the process that imports airflow."""
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
        [sys.executable, "-m", "pipelines.orchestrate", json.dumps(conf), str(result_path)], env=env, cwd=REPO
    )
    if not result_path.exists():
        raise RuntimeError(
            f"the Airflow run exited with {proc.returncode} before finishing (see the log above)"
        )
    return json.loads(result_path.read_text())


def register(app) -> None:
    """Add ``safeaudit audit`` to the CLI."""
    from pipelines import cli

    @app.command("audit")
    def audit_command(
        spec: Annotated[Path, typer.Option(help="run spec YAML")] = Path("runspecs/toy.yaml"),
        tag: Annotated[
            str | None, typer.Option(help="run tag (e.g. a date): a new run that reuses images")
        ] = None,
        home: Annotated[Path, typer.Option(help="AIRFLOW_HOME (SQLite metadata)")] = DEFAULT_HOME,
        parallelism: Annotated[int, typer.Option(min=1, max=8, help="Airflow parallelism")] = 2,
    ):
        """Run the safety_audit DAG through Airflow (dag.test, SQLite metadata); print the summary."""
        result = cli._guard(audit, spec, tag=tag, home=home, parallelism=parallelism)
        failed = [t for t in result["tasks"] if t["state"] not in ("success", "skipped")]
        for t in failed:
            cli.err.print(f"task {t['task_id']}[{t['map_index']}] {t['state']} after {t['try_number']} tries")
        summary = result.get("summary")
        if summary:
            cli.console.print(
                f"{summary['generations']} images: {summary['reused']} reused, {summary['generated_now']} generated "
                f"now ({result['wall_s']:.1f} s in Airflow, dag run {result['dag_run_id']})"
            )
            cli._summary_table(summary["warehouse"], summary["run_id"])  # the answer, last
        if result["state"] != "success":
            cli.err.print(f"[bold red]error:[/] dag run {result['dag_run_id']} {result['state']}")
            raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
