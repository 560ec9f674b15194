"""
### build_negation_set: build (queue/pool `gpu`) → record (the warehouse writer)

Builds the Safe Denoiser's negation set described by param `spec` (a negation-set spec YAML relative to the
project, e.g. `models/toy/negation_set.yaml`): baseline images of the concept's unsafe prompts, kept where the
named unsafe rule flags them, VAE-encoded with the model the set serves, written as a versioned artifact
(`<output>/<name>-<hash>/`). Idempotent: the same inputs give the same hash and write nothing; a retry redoes
only what is missing. `record` writes the set and its members into the warehouse (`negation_sets`,
`negation_set_members`). Not scheduled: run it when a concept, model or size needs a set. XCom carries the
artifact's path and hash only; torch is imported inside the task, never at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

NEGATION_SETS = Asset("safeaudit_negation_sets")
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SAFEAUDIT_RETRY_DELAY_S", "120")))


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["safeaudit", "negation-set", "diffusion-safety"],
    doc_md=__doc__,
    default_args={"owner": "safeaudit", "retries": 2, "retry_delay": RETRY_DELAY},
    params={
        "spec": Param("models/toy/negation_set.yaml", type="string", description="negation-set spec YAML"),
        "warehouse": Param(
            "warehouse/safeaudit.duckdb", type="string", description="warehouse to record it in"
        ),
    },
)
def build_negation_set():
    @task(queue="gpu", pool="gpu")
    def build(params=None) -> dict:
        from pipelines.negation_sets import build as build_set
        from pipelines.negation_sets import load_build_spec
        from pipelines.tasks import project_path

        return build_set(load_build_spec(project_path(params["spec"])))

    @task(outlets=[NEGATION_SETS])
    def record(built: dict, params=None) -> dict:
        from pipelines.negation_sets import record_artifact
        from pipelines.tasks import project_path

        return record_artifact(str(project_path(params["warehouse"])), built["path"])

    record(build())


build_negation_set()
