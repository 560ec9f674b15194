"""What the DAGs' tasks call (``dags/*.py`` stay thin and import these).

The few decisions that are not pipeline logic live here: resolving a spec path and local output paths
against the project (workers run in any working directory), the run's gates (exact counts, then the Great
Expectations suites of ``pipelines.validate``), the report step, a fault-injection point for retry tests,
and a hostname callable so two workers on one machine stay distinguishable.

Imported by DAG files at parse time and by the CLI at start-up: no airflow, torch or diffusers at top level.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FAULTS_ENV = "SAFEAUDIT_FAULTS_DIR"  # a folder; a file <stage>.once in it makes <stage> fail once
WORKER_NAME_ENV = "SAFEAUDIT_WORKER_NAME"

log = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised once by :func:`fault_point` when a test armed it."""


class ValidationFailed(RuntimeError):
    """The run failed a gate: the DAG run fails and the run stays out of the marts."""


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
    from pipelines.validate import validate_run

    problems = []
    if counts.get("batches_pending"):
        problems.append(f"{counts['batches_pending']} batches not loaded")
    if counts.get("generations") != run["n_expected"]:
        problems.append(f"{counts.get('generations')} generations loaded, {run['n_expected']} planned")
    if problems:
        raise ValidationFailed(f"run {run['run_id']}: " + "; ".join(problems))
    result = validate_run(run["warehouse"], run["run_id"])  # raises, or returns a failed result
    if any(result.get(k) is False for k in ("success", "passed", "ok")):
        raise ValidationFailed(f"run {run['run_id']} failed validation (quarantined): {_scalars(result)}")
    return {
        "run_id": run["run_id"],
        "generations": counts["generations"],
        "reused": counts["reused"],
        "generated_now": counts["generations"] - counts["reused"],
        "checks": "counts+expectations",
        "validation": _scalars(result),
    }


def report_step(run: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
    """Summarise the run (reuse included) and write its report (CSV + Markdown) beside its artifacts."""
    from pipelines.report import build_report, write_report

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
