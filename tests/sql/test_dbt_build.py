"""dbt on a small fixture warehouse: its marts equal the engine's, its tests pass on the read-only snapshot.

Needs dbt's own virtualenv (``make dbt-venv`` makes ``.venv-dbt``; dbt-adapters and the main lock disagree on
protobuf). Without it the dbt tests skip with that reason; the DAG task's skip path is tested either way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from pipelines import dbt_project, dbt_run
from pipelines.warehouse import META, materialized, snapshot_path, view_defs, writer
from tests.sql.fixtures import RUN_2, build_fixture_warehouse
from tests.sql.fixtures import comparable as _norm

try:
    dbt_run.dbt_executable()
    NO_DBT = ""
except dbt_run.DbtMissing as exc:
    NO_DBT = str(exc)
needs_dbt = pytest.mark.skipif(bool(NO_DBT), reason=NO_DBT or "dbt installed")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list:
    rows = con.execute(f"SELECT * FROM {schema}.{name}").fetchall()
    return sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)


def assert_models_equal(path: Path, names: list[str]) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        n = 0
        for name in names:
            engine, dbt = _rows(con, "main", name), _rows(con, "dbt", name)
            assert engine == dbt, f"{name}: engine {len(engine)} rows, dbt {len(dbt)} rows differ"
            n += len(engine)
        return n
    finally:
        con.close()


@pytest.fixture(scope="module")
def dbt_env(tmp_path_factory):
    """A fixture warehouse with its snapshot, dbt's target and logs in a temp folder, the models current."""
    tmp = tmp_path_factory.mktemp("dbt")
    wh = tmp / "wh.duckdb"
    build_fixture_warehouse(wh)
    mp = pytest.MonkeyPatch()
    mp.setenv("DBT_TARGET_PATH", str(tmp / "target"))
    mp.setenv("DBT_LOG_PATH", str(tmp / "logs"))
    current = {m.name: m.sql for m in dbt_project.models()}
    on_disk = {p.stem: p.read_text() for p in dbt_project.MODELS_DIR.rglob("*.sql")}
    if on_disk != current:
        dbt_project.write()
    yield wh
    mp.undo()


def test_the_dag_task_skips_with_one_line_without_dbt(monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv(dbt_run.DBT_ENV, str(tmp_path / "no-dbt"))
    with pytest.raises(AirflowSkipException) as exc:
        dbt_run.dbt_test_for_dag(tmp_path / "wh.duckdb")
    assert "dbt not installed" in str(exc.value) and "make dbt-venv" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert dbt_run.dbt_test_task(tmp_path / "wh.duckdb").startswith("dbt test skipped: dbt not installed")


def test_build_refuses_the_main_file_and_its_snapshot(tmp_path):
    wh = tmp_path / "wh.duckdb"
    with pytest.raises(ValueError, match="dbt builds into a copy"):
        dbt_run.build_copy(wh, wh)
    with pytest.raises(ValueError, match="dbt builds into a copy"):
        dbt_run.build_copy(wh, snapshot_path(wh))


@pytest.mark.slow
@needs_dbt
def test_dbt_test_reads_the_snapshot_read_only(dbt_env):
    wh = dbt_env
    before = _sha(wh), _sha(snapshot_path(wh))
    line = dbt_run.dbt_test_line(wh)
    assert "ERROR=0" in line and "PASS=" in line and "WARN=0" in line, line
    assert (_sha(wh), _sha(snapshot_path(wh))) == before
    # the snapshot target cannot write: a build there fails instead of changing the snapshot
    env = dbt_run._env(SAFEAUDIT_DBT_SNAPSHOT=snapshot_path(wh))
    res = dbt_run.run_dbt(["run", "--target", "snapshot", "--select", "stg_runs"], env, check=False)
    assert res.returncode != 0 and "read-only" in res.output.lower(), res.output[-1500:]
    assert (_sha(wh), _sha(snapshot_path(wh))) == before


@pytest.mark.slow
@needs_dbt
def test_dbt_build_and_incremental_run_equal_the_engine(dbt_env, tmp_path):
    wh = dbt_env
    copy = tmp_path / "copy.duckdb"
    res = dbt_run.build_copy(wh, copy)  # dbt build: every model in full, then every test
    assert "ERROR=0" in res.output, res.output[-2000:]
    names = [d.name for d in view_defs()]
    assert assert_models_equal(copy, names) > 0
    # a new run appended (a copy of RUN_2 under new ids), refreshed by the writer's engine and by dbt
    with writer(copy, publish=False) as con:
        new = "dbt-run-3"
        con.execute(
            "INSERT INTO runs SELECT * REPLACE ($2 AS run_id) FROM runs WHERE run_id = $1", [RUN_2, new]
        )
        con.execute(
            "INSERT INTO run_prompts SELECT * REPLACE ($2 AS run_id) FROM run_prompts WHERE run_id = $1",
            [RUN_2, new],
        )
        con.execute(
            "INSERT INTO batches SELECT * REPLACE ($2 AS run_id, 'n' || batch_id AS batch_id) FROM batches "
            "WHERE run_id = $1",
            [RUN_2, new],
        )
        con.execute(
            "INSERT INTO generations SELECT * REPLACE ($2 AS run_id, 'n' || generation_id AS generation_id, "
            "'n' || baseline_generation_id AS baseline_generation_id, 'n' || batch_id AS batch_id) "
            "FROM generations WHERE run_id = $1",
            [RUN_2, new],
        )
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('n' || generation_id AS generation_id) FROM scores "
            "WHERE generation_id IN (SELECT generation_id FROM generations WHERE run_id = $1)",
            [RUN_2],
        )
    con = duckdb.connect(str(copy), read_only=True)
    try:
        mode = con.execute(
            f"SELECT mode FROM {META}.refresh_log ORDER BY refreshed_at DESC LIMIT 1"
        ).fetchall()
        n_new = con.execute("SELECT count(*) FROM main.mart_tradeoff WHERE run_id = 'dbt-run-3'").fetchall()[
            0
        ][0]
    finally:
        con.close()
    assert mode == [("incremental",)] and n_new > 0
    res = dbt_run.build_copy(
        wh, copy, args=("run", "--select", "config.materialized:incremental"), fresh=False
    )
    assert "ERROR=0" in res.output, res.output[-2000:]
    assert assert_models_equal(copy, [d.name for d in materialized()]) > 0
    assert assert_models_equal(copy, ["mart_safety", "mart_overcensorship", "mart_prompt_safety"]) > 0


def test_the_dbt_dag_runs_after_each_load_and_parses_light(tmp_path, monkeypatch):
    import subprocess
    import sys

    from pipelines import airflow_local

    probe = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; b = DagBag(dag_folder=sys.argv[1]); "
        "d = b.dags['dbt_checks']; heavy = [m for m in ('duckdb', 'torch') if m in sys.modules]; "
        "print(b.import_errors, d.task_ids, heavy, 'safeaudit_warehouse' in repr(d.timetable.asset_condition))"
    )
    dag_file = Path(__file__).resolve().parents[2] / "dags" / "dbt_checks.py"
    out = subprocess.run(
        [sys.executable, "-c", probe, str(dag_file)],
        env=airflow_local.airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line == "{} ['dbt_test'] [] True", f"errors, tasks, heavy imports at parse, on the asset: {line}"


@pytest.mark.slow
@needs_dbt
def test_dbt_docs_hold_the_lineage_and_open_from_disk(dbt_env):
    import json

    page = dbt_run.docs(dbt_env)
    assert page.name == "static_index.html" and page.is_file()
    manifest = json.loads((page.parent / "manifest.json").read_text())
    parents = manifest["nodes"]["model.safeaudit.mart_tradeoff"]["depends_on"]["nodes"]
    assert "model.safeaudit.int_generation_flags" in parents
    catalog = json.loads((page.parent / "catalog.json").read_text())
    assert len(catalog["nodes"]) == len(view_defs()) and not catalog.get("errors")
    assert "mart_tradeoff" in page.read_text()


def test_paths_reach_dbt_absolute(monkeypatch, tmp_path):
    """dbt runs in sql/dbt: a warehouse path relative to the caller's folder must not change meaning."""
    monkeypatch.chdir(tmp_path)
    env = dbt_run._env(SAFEAUDIT_DBT_SNAPSHOT="warehouse/x.snapshot.duckdb", SAFEAUDIT_DBT_THREADS="1")
    assert env["SAFEAUDIT_DBT_SNAPSHOT"] == str(tmp_path / "warehouse" / "x.snapshot.duckdb")
    assert env["SAFEAUDIT_DBT_THREADS"] == "1" and env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
