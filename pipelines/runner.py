"""Run a whole audit in one process: plan → generate → score → load (the embedded, non-Airflow path).

The Airflow DAG calls the same four functions as separate tasks; this is their sequential composition,
with progress bars. Re-running is safe at every point: finished batches are skipped, partial ones redone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipelines.generate import generate_batch
from pipelines.load import load_run
from pipelines.plan import plan_run
from pipelines.runspec import RunSpec, load_spec
from pipelines.score import score_batch


def preflight(spec: RunSpec) -> None:
    """Fail before anything is written when the model or concept pack cannot be found."""
    from models.components import resolve_model
    from models.concepts import load_pack

    resolve_model(spec.model.id)
    load_pack(spec.concept)


def run_audit(
    spec_or_path: RunSpec | str | Path, quiet: bool = False, overrides: dict | None = None
) -> dict[str, Any]:
    spec = spec_or_path if isinstance(spec_or_path, RunSpec) else load_spec(spec_or_path, overrides)
    preflight(spec)
    plan = plan_run(spec)
    run_id, artifacts = plan["run_id"], spec.output.artifacts
    n_new = plan["n_expected"] - plan["n_reused"]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=False,
    ) as bar:
        gen = bar.add_task(f"generate {run_id}", total=plan["n_expected"])
        manifests = []
        for batch_id in plan["batch_ids"]:
            m = generate_batch(artifacts, run_id, batch_id, progress=lambda n: bar.advance(gen, n))
            if m.get("skipped"):
                bar.advance(gen, m["n_items"])
            manifests.append(m)
        sc = bar.add_task("score", total=len(plan["batch_ids"]))
        for batch_id in plan["batch_ids"]:
            score_batch(artifacts, run_id, batch_id, warehouse=spec.output.warehouse)
            bar.advance(sc)
        summary = load_run(artifacts, run_id, spec.output.warehouse)
    summary["generated_now"] = sum(m["n_generated"] for m in manifests if not m.get("skipped"))
    summary["planned_new"] = n_new
    summary["spec"] = spec.name
    return summary
