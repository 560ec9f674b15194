"""
### safety_audit: plan → generate (per batch, queue/pool `gpu`) → score (per batch) → load → validate → report

Audits the run spec in param `spec` (a YAML path relative to the project). Scheduled runs are tagged with
their logical date: each night is a new run id whose unchanged generations are *reused* (same content
hash), so only new prompts, methods or levels cost GPU time. Batches are idempotent (manifest written
last): a retry redoes unfinished work only. `load` is the single DuckDB writer; `validate` gates the run
(a failure fails the DAG run and quarantines the run); `report` writes the tables and the reuse counts.
XCom carries ids, paths and small dicts only; tasks import torch lazily, never at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task

WAREHOUSE = Asset("safeaudit_warehouse")  # downstream consumers (dashboards, reports) can schedule on it
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SAFEAUDIT_RETRY_DELAY_S", "120")))


@dag(
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # one DuckDB writer: nightly runs never overlap
    tags=["safeaudit", "audit", "diffusion-safety"],
    doc_md=__doc__,
    default_args={"owner": "safeaudit", "retries": 2, "retry_delay": RETRY_DELAY},
    params={
        "spec": Param("runspecs/toy.yaml", type="string", description="run spec YAML"),
        "tag": Param(None, type=["null", "string"], description="run tag (scheduled: the logical date)"),
        "overrides": Param({}, type="object", description="run spec keys to override, e.g. output"),
    },
)
def safety_audit():
    @task(multiple_outputs=False)
    def plan(params=None, dag_run=None, ds=None) -> dict:
        from pipelines.tasks import plan_for_dag

        tag = params["tag"] or (ds if dag_run.run_type == "scheduled" else None)
        return plan_for_dag(params["spec"], tag=tag, overrides=params["overrides"])

    @task
    def batches(run: dict) -> list[str]:  # Airflow maps over a task's return value only
        return run["batch_ids"]

    @task(queue="gpu", pool="gpu", map_index_template="{{ batch_label }}")
    def generate(run: dict, batch_id: str):
        from pipelines.generate import generate_batch
        from pipelines.tasks import batch_label, fault_point

        get_current_context()["batch_label"] = batch_label(batch_id)
        fault_point("generate", batch_id)
        m = generate_batch(run["artifacts"], run["run_id"], batch_id)
        return {k: m[k] for k in ("batch_id", "n_items", "n_generated", "n_reused", "skipped")}

    @task(map_index_template="{{ batch_label }}")
    def score(run: dict, generated: dict):
        from pipelines.score import score_batch
        from pipelines.tasks import batch_label

        get_current_context()["batch_label"] = batch_label(generated["batch_id"])
        score_batch(run["artifacts"], run["run_id"], generated["batch_id"], warehouse=run["warehouse"])
        return generated["batch_id"]

    @task(outlets=[WAREHOUSE])
    def load(run: dict, scored: list[str], *, outlet_events=None):
        from pipelines.load import load_run

        counts = load_run(run["artifacts"], run["run_id"], run["warehouse"])
        # which warehouse this load wrote: the consumers (dbt_checks) test that one, not a default path
        outlet_events[WAREHOUSE].extra = {"warehouse": str(run["warehouse"]), "run_id": run["run_id"]}
        return counts

    @task(retries=0)  # deterministic: a failing check must fail the run, not be retried
    def validate(run: dict, counts: dict):
        from pipelines.tasks import validate_gate

        return validate_gate(run, counts)

    @task(retries=0)
    def report(run: dict, validation: dict):
        from pipelines.tasks import report_step

        return report_step(run, validation)

    run = plan()
    generated = generate.partial(run=run).expand(batch_id=batches(run))
    scored = score.partial(run=run).expand(generated=generated)
    report(run, validate(run, load(run, scored)))


safety_audit()
