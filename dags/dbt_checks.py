"""
### dbt_checks: dbt test on the read snapshot, after every load

Scheduled on the `safeaudit_warehouse` asset, which `safety_audit`'s `load` task updates: each load is
followed by the dbt project's schema tests (`sql/dbt`: unique grains, keys, relationships, accepted values)
against the published read snapshot, attached READ_ONLY, so it never touches the writer's file. dbt lives in
its own virtualenv (`make dbt-venv`); without it the task is skipped with one line saying so, and the audit
is not affected. Task bodies are in `pipelines.dbt_run`; nothing heavy is imported at parse time.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, Param, dag, task

WAREHOUSE = Asset("safeaudit_warehouse")


@dag(
    schedule=[WAREHOUSE],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["safeaudit", "dbt", "warehouse"],
    doc_md=__doc__,
    default_args={"owner": "safeaudit", "retries": 0},  # deterministic: a failing test fails the run
    params={
        "warehouse": Param(
            "warehouse/safeaudit.duckdb", type="string", description="warehouse whose snapshot to test"
        )
    },
)
def dbt_checks():
    @task
    def dbt_test(params=None, triggering_asset_events=None) -> str:
        from pipelines.dbt_run import dbt_test_for_dag, warehouse_from_events
        from pipelines.tasks import project_path

        warehouse = warehouse_from_events(triggering_asset_events, WAREHOUSE, params["warehouse"])
        return dbt_test_for_dag(str(project_path(warehouse)))

    dbt_test()


dbt_checks()
