"""The dbt_checks DAG run by Airflow itself (dag.test): its task imports what it calls and, without dbt,
ends *skipped* with one line, never failed (the audit's load is not held up by a missing .venv-dbt)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_dbt_checks_task_is_skipped_with_one_line_without_dbt(airflow_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEAUDIT_DBT", str(tmp_path / "no-dbt" / "bin" / "dbt"))
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(REPO / "dags" / "dbt_checks.py"))
    assert not bag.import_errors, bag.import_errors
    warehouse = tmp_path / "warehouse" / "safeaudit.duckdb"
    dr = bag.get_dag("dbt_checks").test(run_conf={"warehouse": str(warehouse)})
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
    assert states == {"dbt_test": "skipped"}, states
    assert str(dr.state) == "success"


def test_dbt_checks_tests_the_warehouse_the_triggering_load_wrote():
    from types import SimpleNamespace

    from pipelines.dbt_run import warehouse_from_events

    asset = "safeaudit_warehouse"
    events = {
        asset: [
            SimpleNamespace(extra={"warehouse": "/a.duckdb"}),
            SimpleNamespace(extra={"warehouse": "/b.duckdb"}),
        ]
    }
    assert warehouse_from_events(events, asset, "default.duckdb") == "/b.duckdb"  # the newest load
    assert (
        warehouse_from_events({asset: [SimpleNamespace(extra={})]}, asset, "default.duckdb")
        == "default.duckdb"
    )
    assert warehouse_from_events(None, asset, "default.duckdb") == "default.duckdb"  # a manual trigger
