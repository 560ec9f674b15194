"""Hostile use of the warehouse (issue 15 items 1, 3, 5, 6, 12): each case ends in exit 2 and one line, or a
clean accept, and the warehouse's tables hash the same before and after.

Real DuckDB files and real processes throughout: the CLI in a subprocess where its stderr is the point, a
second process holding the file for the writer's lock, SIGKILL of a publisher, a small tmpfs (in a private
mount namespace) for a real ENOSPC.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipelines.cli import app  # noqa: E402
from tests.sql.fixtures import build_fixture_warehouse  # noqa: E402

SAFEAUDIT = [sys.executable, "-m", "pipelines.cli"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# -- what "changed nothing" means --------------------------------------------------------------------------------
def table_hashes(path: Path) -> dict[str, tuple]:
    """Every table of every schema (main and meta): row count and a sum of row hashes; views' SQL."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH ? AS h (READ_ONLY)", [str(path)])
        out: dict[str, tuple] = {}
        for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'h' ORDER BY ALL"
        ).fetchall():
            out[f"{schema}.{name}"] = con.execute(  # order-free: a sum of row hashes, and the count
                f'SELECT count(*), coalesce(sum(hash(t)), 0) FROM h."{schema}"."{name}" t'
            ).fetchall()[0]
        for schema, name, sql in con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = 'h' AND NOT internal "
            "ORDER BY ALL"
        ).fetchall():
            out[f"view {schema}.{name}"] = (hashlib.sha256(sql.encode()).hexdigest(),)
        return out
    finally:
        con.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(wh: Path) -> dict:
    """The main file's tables, the snapshot's bytes, and the folder's listing."""
    snap = wh.with_name(wh.stem + ".snapshot" + wh.suffix)
    return {
        "main": table_hashes(wh),
        "snapshot": sha256(snap) if snap.exists() else None,
        "files": sorted(p.name for p in wh.parent.iterdir()),
    }


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:") and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A loaded warehouse with its published snapshot (the SQL tests' fixture runs), built once."""
    return build_fixture_warehouse(tmp_path_factory.mktemp("template") / "wh.duckdb").path


@pytest.fixture()
def wh(template, tmp_path) -> Path:
    """A private copy of the template: main file and snapshot."""
    d = tmp_path / "warehouse"
    d.mkdir()
    for p in template.parent.glob("wh*.duckdb"):
        shutil.copy2(p, d / p.name)
    return d / "wh.duckdb"


def snap_of(wh: Path) -> Path:
    return wh.with_name(wh.stem + ".snapshot" + wh.suffix)


# == 1. `safeaudit sql` is read-only for real ======================================================================
ACCEPTANCE = {
    "copy_to_file": "COPY (SELECT 1) TO 'leak.csv'",
    "read_text_etc_passwd": "SELECT * FROM read_text('/etc/passwd')",
    "attach_main_and_create": "ATTACH '{main}' AS w; CREATE TABLE w.t AS SELECT 1",
}


@pytest.mark.parametrize("case", sorted(ACCEPTANCE))
def test_sql_acceptance_cases_exit_2_one_line_and_change_nothing(wh, case):
    query = ACCEPTANCE[case].format(main=wh)
    before = state(wh)
    res = subprocess.run(
        [*SAFEAUDIT, "sql", query, "--warehouse", str(wh)],
        cwd=wh.parent,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    one_line_error(res.stderr)
    assert not (wh.parent / "leak.csv").exists()
    assert state(wh) == before


HOSTILE_SQL = {
    "attach_snapshot_rw_and_zero_unsafe_rate": "ATTACH '{snap}' AS s; UPDATE s.mart_tradeoff SET unsafe_rate = 0",
    "attach_main_insert_fake_run": "ATTACH '{main}' AS w; INSERT INTO w.runs (run_id, name, spec_json, "
    "spec_sha256, planned_at, n_batches, n_expected) VALUES ('fake', 'fake', '{{}}', 'x', now(), 0, 0)",
    "export_database": "EXPORT DATABASE '{dir}/exported'",
    "copy_table_to_parquet": "COPY runs TO '{dir}/runs.parquet' (FORMAT parquet)",
    "read_csv_any_file": "SELECT * FROM read_csv('/etc/passwd')",
    "read_parquet_of_main_dir": "SELECT * FROM read_parquet('{dir}/*.parquet')",
    "glob_the_disk": "SELECT * FROM glob('/etc/*')",
    "read_blob_of_main_file": "SELECT * FROM read_blob('{main}')",
    "install_extension": "INSTALL httpfs",
    "load_extension": "LOAD httpfs",
    "create_secret": "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
    "turn_external_access_back_on": "SET enable_external_access = true",
    "unlock_configuration": "SET lock_configuration = false",
    "detach_the_snapshot": "DETACH warehouse",
    "select_then_delete": "SELECT 1; DELETE FROM runs",
    "delete": "DELETE FROM generations",
    "drop_view": "DROP VIEW mart_tradeoff",
    "create_in_memory_then_read": "CREATE TABLE memory.main.t AS SELECT * FROM runs",
    "use_other_catalog": "USE memory",
    "pragma": "PRAGMA enable_profiling",
    "call_checkpoint": "CHECKPOINT",
    "import_database": "IMPORT DATABASE '{dir}'",
    "empty": "   ",
    "syntax_error": "SELEC 1",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SQL))
def test_sql_hostile_corpus_is_refused_with_one_line(wh, case, monkeypatch):
    monkeypatch.chdir(wh.parent)
    query = HOSTILE_SQL[case].format(main=wh, snap=snap_of(wh), dir=wh.parent)
    before = state(wh)
    res = CliRunner().invoke(app, ["sql", query, "--warehouse", str(wh)])
    assert res.exit_code == 2, res.output
    one_line_error(res.stderr)
    assert state(wh) == before


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM mart_tradeoff",  # README
        "SELECT method, level, unsafe_rate, fidelity_loss, toy_match_rate, on_pareto_front FROM mart_tradeoff "
        "WHERE rule = 'toy_red'",  # README
        "SELECT method, count(*) AS n FROM generations GROUP BY 1 ORDER BY 1;",
        "WITH r AS (SELECT run_id FROM runs) SELECT count(*) FROM r",
        "FROM runs SELECT run_id",
        "DESCRIBE mart_tradeoff",
        "SHOW TABLES",
        "SUMMARIZE runs",
        "SELECT * FROM duckdb_settings() WHERE name = 'enable_external_access'",
    ],
)
def test_sql_analyst_queries_still_work(wh, query):
    before = state(wh)
    res = CliRunner().invoke(app, ["sql", query, "--warehouse", str(wh), "--format", "json"])
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)
    assert state(wh) == before


def test_the_dashboard_and_the_cli_read_through_one_locked_down_factory(wh):
    from dashboards import connection
    from pipelines import readonly
    from pipelines.warehouse import reader

    assert connection.open_snapshot is readonly.open_snapshot
    for con in (reader(wh), connection.open_snapshot(snap_of(wh))):
        try:
            settings = dict(
                con.execute(
                    "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
                    "'lock_configuration', 'autoinstall_known_extensions', 'autoload_known_extensions')"
                ).fetchall()
            )
            assert settings == {
                "enable_external_access": "false",
                "lock_configuration": "true",
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
            }
            path = con.execute(
                "SELECT path FROM duckdb_databases() WHERE database_name = 'warehouse'"
            ).fetchall()
            assert Path(path[0][0]).name == snap_of(wh).name  # the snapshot, never the main file
        finally:
            con.close()


# == 3. snapshot publish: unique temp, fsync, no leftovers, stale temps swept ======================================
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_publish_sweeps_temps_of_dead_and_old_publishers(wh):
    from pipelines.warehouse import publish_snapshot

    snap = snap_of(wh)
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        legacy = wh.parent / f".{snap.name}.{dead}.tmp"  # c1bbf7d's name
        killed = wh.parent / f".{snap.name}.{dead}.0a1b2c3d4e5f.tmp"
        old = wh.parent / f".{snap.name}.{live.pid}.ffffffffffff.tmp"
        running = wh.parent / f".{snap.name}.{live.pid}.eeeeeeeeeeee.tmp"  # a live publisher's: kept
        for p in (legacy, killed, old, running):
            p.write_bytes(b"\0" * 4096)
        two_hours_ago = time.time() - 2 * 3600
        os.utime(old, (two_hours_ago, two_hours_ago))
        publish_snapshot(wh)
        left = sorted(p.name for p in wh.parent.glob(".*.tmp"))
        assert left == [running.name]
        assert table_hashes(snap) == table_hashes(wh)
    finally:
        live.kill()
        live.wait()


KILLED_PUBLISHER = """
import os, sys, time
import pipelines.warehouse as w
real_replace = os.replace
def stalled(src, dst):  # the copy is written; the rename never comes
    print(src, flush=True)
    time.sleep(120)
os.replace = stalled
w.publish_snapshot(sys.argv[1])
"""


def test_a_publisher_killed_before_its_rename_leaves_nothing_after_the_next_publish(wh):
    from pipelines.warehouse import publish_snapshot

    before = sha256(snap_of(wh))
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_PUBLISHER, str(wh)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        tmp = Path(child.stdout.readline().strip())
        assert tmp.exists() and tmp.parent == wh.parent
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert tmp.exists()  # SIGKILL: no finally runs
    assert sha256(snap_of(wh)) == before  # readers still see the old snapshot, whole
    publish_snapshot(wh)
    assert not list(wh.parent.glob(".*.tmp"))


def test_enospc_mid_copy_is_one_line_and_leaves_no_temp(wh, monkeypatch):
    import pipelines.warehouse as w

    before = sha256(snap_of(wh))

    def full_disk(src, out):
        out.write(Path(src).read_bytes()[: 1 << 20])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(w, "_copy_file", full_disk)
    with pytest.raises(w.WarehouseError) as exc, w.writer(wh) as con:
        con.execute("UPDATE runs SET tag = 'after' WHERE run_id = 'fixture-run-1'")
    assert "No space left on device" in str(exc.value) and "\n" not in str(exc.value)
    assert not list(wh.parent.glob(".*.tmp"))
    assert sha256(snap_of(wh)) == before
    monkeypatch.undo()
    w.publish_snapshot(wh)  # space is back: the next publish carries the committed change
    assert table_hashes(snap_of(wh)) == table_hashes(wh)


FULL_TMPFS = """
import json, os, sys
from pathlib import Path
from tests.sql.fixtures import build_fixture_warehouse
import pipelines.warehouse as w
d = Path(sys.argv[1])
wh = build_fixture_warehouse(d / "wh.duckdb").path
snap = w.snapshot_path(wh)
before = snap.read_bytes()
st = os.statvfs(d)
free = st.f_bavail * st.f_frsize
filler = d / "filler"
filler.write_bytes(b"x" * max(0, free - wh.stat().st_size // 2))  # room for half a copy
out = {}
try:
    w.publish_snapshot(wh)
    out["error"] = None
except Exception as exc:
    out["error"] = type(exc).__name__ + ": " + str(exc)
out["temps"] = sorted(p.name for p in d.glob(".*.tmp"))
out["snapshot_unchanged"] = snap.read_bytes() == before
filler.unlink()
w.publish_snapshot(wh)  # space freed: the re-run succeeds (no orphan ate it)
out["rerun_temps"] = sorted(p.name for p in d.glob(".*.tmp"))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_publish_on_a_really_full_tmpfs(tmp_path):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a private tmpfs")
    d = tmp_path / "small"
    d.mkdir()
    script = tmp_path / "full.py"
    script.write_text(FULL_TMPFS)
    cmd = f"mount -t tmpfs -o size=48m tmpfs {d} && exec {sys.executable} {script} {d}"
    res = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", cmd],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if res.returncode != 0 and "mount" in res.stderr and "permission" in res.stderr.lower():
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()[:200]}")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] and "No space left on device" in out["error"]
    assert out["temps"] == [] and out["snapshot_unchanged"]
    assert out["rerun_temps"] == []


def test_temp_names_are_unique_per_publish(tmp_path):
    from pipelines.warehouse import _temp_name

    snap = tmp_path / "wh.snapshot.duckdb"
    names = {_temp_name(snap).name for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(f".wh.snapshot.duckdb.{os.getpid()}.") and n.endswith(".tmp") for n in names)


# == 5. the loader trusts the plan, not the batch files ============================================================
@pytest.fixture(scope="module")
def loaded_run(tmp_path_factory):
    """A real run (tiny model, one cheap scorer): 3 prompts x 2 images in 3 batches, loaded."""
    tmp = tmp_path_factory.mktemp("run")
    spec = {
        "name": "hostile",
        "model": {"id": "builtin:tiny"},
        "sampler": {"scheduler": "ddim", "steps": 2},
        "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 3}],
        "images_per_prompt": 2,
        "methods": [{"name": "baseline"}],
        "scorers": ["degenerate"],
        "batch_size": 2,
        "output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(tmp / "wh.duckdb")},
    }
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    res = CliRunner().invoke(app, ["run", str(tmp / "spec.yaml"), "--quiet"])
    assert res.exit_code == 0, res.output
    run_id = next(p.name for p in (tmp / "artifacts").iterdir() if p.name.startswith("hostile-"))
    return tmp, run_id


@pytest.fixture()
def run_copy(loaded_run, tmp_path):
    """(artifacts, warehouse, run_id, plan): a private copy of the loaded run to tamper with."""
    src, run_id = loaded_run
    shutil.copytree(src / "artifacts", tmp_path / "artifacts")
    (tmp_path / "warehouse").mkdir()
    for p in src.glob("wh*.duckdb"):
        shutil.copy2(p, tmp_path / "warehouse" / p.name)
    plan = json.loads((tmp_path / "artifacts" / run_id / "plan.json").read_text())
    return tmp_path / "artifacts", tmp_path / "warehouse" / "wh.duckdb", run_id, plan


def _load(artifacts: Path, wh: Path, run_id: str, **env):
    return CliRunner(env=env or None).invoke(
        app, ["load", run_id, "--artifacts", str(artifacts), "--warehouse", str(wh)]
    )


def _rewrite(path: Path, fn) -> None:
    pq.write_table(fn(pq.read_table(path)), path)


def _set(table: pa.Table, column: str, value) -> pa.Table:
    i = table.column_names.index(column)
    return table.set_column(i, column, pa.array([value] * table.num_rows, table.schema.field(column).type))


def tamper_other_run_rows(artifacts, run_id, plan):
    batch = plan["batch_ids"][0]
    _rewrite(artifacts / run_id / batch / "generations.parquet", lambda t: _set(t, "run_id", "fixture-run-1"))
    return batch, "generations.parquet"


def tamper_foreign_batch_id(artifacts, run_id, plan):
    batch = plan["batch_ids"][0]
    _rewrite(
        artifacts / run_id / batch / "generations.parquet",
        lambda t: _set(t, "batch_id", plan["batch_ids"][1]),
    )
    return batch, "generations.parquet"


def tamper_short_parquet(artifacts, run_id, plan):
    batch = plan["batch_ids"][1]
    _rewrite(artifacts / run_id / batch / "generations.parquet", lambda t: t.slice(0, 1))
    return batch, "generations.parquet"


def tamper_image_of_another_batch(artifacts, run_id, plan):
    a, b = plan["batch_ids"][:2]
    other = pq.read_table(artifacts / run_id / b / "generations.parquet").slice(0, 1)
    _rewrite(
        artifacts / run_id / a / "generations.parquet",
        lambda t: pa.concat_tables([t.slice(0, 1), _set(_set(other, "batch_id", a), "run_id", run_id)]),
    )
    return a, "generations.parquet"


def tamper_manifest_of_another_batch(artifacts, run_id, plan):
    a, b = plan["batch_ids"][:2]
    shutil.copy(artifacts / run_id / b / "manifest.json", artifacts / run_id / a / "manifest.json")
    return a, "manifest.json"


def tamper_scores_of_a_foreign_image(artifacts, run_id, plan):
    batch = plan["batch_ids"][2]
    _rewrite(
        artifacts / run_id / batch / "scores.parquet",
        lambda t: _set(t, "generation_id", "0" * 64),
    )
    return batch, "scores.parquet"


def tamper_plan_of_another_run(artifacts, run_id, plan):
    path = artifacts / run_id / "plan.json"
    path.write_text(json.dumps({**plan, "run_id": "fixture-run-1"}))
    return run_id, "plan.json"


TAMPER = {
    f.__name__.removeprefix("tamper_"): f
    for f in (
        tamper_other_run_rows,
        tamper_foreign_batch_id,
        tamper_short_parquet,
        tamper_image_of_another_batch,
        tamper_manifest_of_another_batch,
        tamper_scores_of_a_foreign_image,
        tamper_plan_of_another_run,
    )
}


@pytest.mark.slow  # a real run (tiny model) for the batch files
@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_batch_files_are_refused_with_one_line_and_nothing_written(run_copy, case):
    artifacts, wh, run_id, plan = run_copy
    batch, filename = TAMPER[case](artifacts, run_id, plan)
    before = table_hashes(wh)
    res = _load(artifacts, wh, run_id)
    assert res.exit_code == 2, res.output
    line = one_line_error(res.stderr)
    assert batch in line and filename in line, line
    assert table_hashes(wh) == before


@pytest.mark.slow  # a real run (tiny model) for the batch files
def test_an_untampered_reload_still_loads_and_changes_nothing(run_copy):
    artifacts, wh, run_id, _ = run_copy
    before = table_hashes(wh)
    res = _load(artifacts, wh, run_id)
    assert res.exit_code == 0, res.output
    after = table_hashes(wh)
    changed = {k for k in before if before[k] != after.get(k)}
    # only load times (runs, batches and the mart showing them) and the refresh's bookkeeping move
    assert {k for k in changed if not k.startswith("meta.")} <= {
        "main.runs",
        "main.batches",
        "main.mart_runs",
    }
    assert set(after) == set(before)
    assert after["main.generations"] == before["main.generations"] and after["main.generations"][0] == 6


# == 6. the writer waits for a holder, then names it; readers never hold the main file =============================
HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # an analyst's read-only connection to the main file
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
time.sleep(30)
"""


def _holder(path: Path, hold_s: float) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(hold_s)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert p.stdout.readline().strip() == "holding"
    return p


def test_the_writer_waits_then_fails_with_one_line_naming_the_holder(wh, monkeypatch):
    from pipelines.warehouse import WarehouseError, writer

    monkeypatch.setenv("SAFEAUDIT_WRITER_WAIT_S", "1")
    holder = _holder(wh, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(WarehouseError) as exc, writer(wh):
            pass
        waited = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    text = str(exc.value)
    assert "\n" not in text and str(wh) in text and f"PID {holder.pid}" in text, text
    assert 0.9 <= waited < 10, waited


@pytest.mark.slow
def test_the_writer_gets_the_file_once_the_holder_lets_go(wh, monkeypatch):
    from pipelines.warehouse import writer

    monkeypatch.setenv("SAFEAUDIT_WRITER_WAIT_S", "30")
    holder = _holder(wh, 1.5)
    try:
        t0 = time.monotonic()
        with writer(wh) as con:
            con.execute("UPDATE runs SET tag = 'waited' WHERE run_id = 'fixture-run-1'")
        waited = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert waited >= 1.0, waited
    con = duckdb.connect(str(snap_of(wh)), read_only=True)
    try:
        assert con.execute("SELECT tag FROM runs WHERE run_id = 'fixture-run-1'").fetchall() == [("waited",)]
    finally:
        con.close()


@pytest.mark.slow  # a real run (tiny model) for the batch files
def test_load_while_an_analyst_holds_the_main_file_is_one_line(run_copy):
    artifacts, wh, run_id, _ = run_copy
    before = table_hashes(wh)
    holder = _holder(wh, 60)
    try:
        res = _load(artifacts, wh, run_id, SAFEAUDIT_WRITER_WAIT_S="0.5")
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2, res.output
    assert f"PID {holder.pid}" in one_line_error(res.stderr)
    assert table_hashes(wh) == before


READER_WITHOUT_SNAPSHOT = """
import sys, time
from pipelines.warehouse import reader
try:
    con = reader(sys.argv[1])
except Exception as exc:
    print("refused", exc, flush=True)
else:
    print("opened", flush=True)
    time.sleep(30)
"""


def test_readers_never_open_the_main_file_so_they_cannot_block_the_writer(wh, monkeypatch):
    from pipelines.warehouse import writer

    snap_of(wh).unlink()  # e.g. after a crashed first load
    child = subprocess.Popen(
        [sys.executable, "-c", READER_WITHOUT_SNAPSHOT, str(wh)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        said = child.stdout.readline().strip()
        monkeypatch.setenv("SAFEAUDIT_WRITER_WAIT_S", "0")
        with writer(wh, publish=False):  # not blocked: nobody holds the main file
            pass
    finally:
        child.kill()
        child.wait()
    assert said.startswith("refused") and "safeaudit load" in said, said
    res = subprocess.run(
        [*SAFEAUDIT, "sql", "SELECT 1", "--warehouse", str(wh)], env=ENV, capture_output=True, text=True
    )
    assert res.returncode == 2 and "safeaudit load" in one_line_error(res.stderr)


def test_the_dashboard_refuses_the_main_file_too(wh, monkeypatch):
    from dashboards import connection
    from pipelines.warehouse import WarehouseError

    snap_of(wh).unlink()
    monkeypatch.setenv(connection.ENV_WAREHOUSE, str(wh))
    with pytest.raises(WarehouseError, match="safeaudit load"):
        connection.source()


def test_a_bad_wait_setting_is_one_line(wh, monkeypatch):
    from pipelines.warehouse import WarehouseError, writer

    monkeypatch.setenv("SAFEAUDIT_WRITER_WAIT_S", "soon")
    with pytest.raises(WarehouseError, match="SAFEAUDIT_WRITER_WAIT_S"), writer(wh):
        pass


# == 12. a DuckDB file that is not a safeaudit warehouse is refused untouched =====================================
def _foreign(path: Path, *statements: str) -> Path:
    con = duckdb.connect(str(path))
    for sql in statements:
        con.execute(sql)
    con.close()
    return path


FOREIGN = {
    "tables_and_a_schema": (
        "CREATE TABLE customers AS SELECT range AS id, 'c' || range AS name FROM range(100)",
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.orders AS SELECT range AS id, range % 7 AS customer FROM range(50)",
        "CREATE VIEW big_orders AS SELECT * FROM sales.orders WHERE id > 10",
    ),
    "another_tools_schema_migrations": (
        "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY)",
        "INSERT INTO schema_migrations VALUES ('20240101000000')",
        "CREATE TABLE users (id INTEGER)",
    ),
    "only_a_schema": ("CREATE SCHEMA analytics",),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_the_writer_refuses_a_foreign_duckdb_file_untouched(tmp_path, case):
    from pipelines.warehouse import WarehouseError, writer

    foreign = _foreign(tmp_path / "other.duckdb", *FOREIGN[case])
    digest, hashes, listing = (
        sha256(foreign),
        table_hashes(foreign),
        sorted(p.name for p in tmp_path.iterdir()),
    )
    with pytest.raises(WarehouseError, match="not a safeaudit warehouse") as exc, writer(foreign):
        pytest.fail("the body must not run")
    assert "\n" not in str(exc.value)
    assert sha256(foreign) == digest and table_hashes(foreign) == hashes
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no snapshot, no WAL


CRASHED_WRITER = """
import os, signal, sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE a AS SELECT range AS x FROM range(10)")
con.execute("CHECKPOINT")
con.execute("INSERT INTO a VALUES (99)")  # stays in the WAL: the process dies before any checkpoint
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_foreign_file_with_a_pending_wal_is_refused_untouched(tmp_path):
    """A read-write open would replay and checkpoint the WAL (both files change): the writer looks first
    through a read-only ATTACH."""
    from pipelines.warehouse import WarehouseError, writer

    foreign = tmp_path / "crashed.duckdb"
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(foreign)], timeout=60)
    wal = foreign.with_name(foreign.name + ".wal")
    assert wal.exists()
    before = {p.name: sha256(p) for p in tmp_path.iterdir()}
    with pytest.raises(WarehouseError, match="not a safeaudit warehouse"), writer(foreign):
        pass
    assert {p.name: sha256(p) for p in tmp_path.iterdir()} == before


@pytest.mark.slow  # a real run (tiny model) for the batch files
@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_load_into_a_foreign_duckdb_file_is_refused_untouched(run_copy, tmp_path, case):
    artifacts, _, run_id, _ = run_copy
    foreign = _foreign(tmp_path / "other.duckdb", *FOREIGN[case])
    digest, listing = sha256(foreign), sorted(p.name for p in tmp_path.iterdir())
    res = _load(artifacts, foreign, run_id)
    assert res.exit_code == 2, res.output
    assert "not a safeaudit warehouse" in one_line_error(res.stderr)
    assert sha256(foreign) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no snapshot, no WAL


@pytest.mark.slow  # a real run (tiny model) for the batch files
def test_a_file_that_is_not_duckdb_is_one_line_and_untouched(run_copy, tmp_path):
    artifacts, _, run_id, _ = run_copy
    notes = tmp_path / "notes.duckdb"
    notes.write_text("not a database\n" * 100)
    digest = sha256(notes)
    res = _load(artifacts, notes, run_id)
    assert res.exit_code == 2, res.output
    one_line_error(res.stderr)
    assert sha256(notes) == digest


@pytest.mark.parametrize("kind", ["new_path", "empty_duckdb_file"])
def test_a_new_or_empty_file_is_still_created_and_migrated(tmp_path, kind):
    from pipelines.warehouse import migrations, writer

    path = tmp_path / "fresh.duckdb"
    if kind == "empty_duckdb_file":
        _foreign(path)
    with writer(path) as con:
        versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    assert versions == [m.stem for m in migrations()]
    assert snap_of(path).exists()
