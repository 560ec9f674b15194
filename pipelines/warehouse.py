"""The DuckDB warehouse: migrations, views, and the two ways in (one writer, many snapshot readers).

Concurrency (DuckDB allows one writing process per file, and while it holds the file no other process
can open it, not even read-only):

- ``pipelines/load.py`` is the only writer. It writes ``<name>.duckdb`` and, after each load, publishes a
  **read snapshot** ``<name>.snapshot.duckdb`` by copy + atomic rename.
- Every reader (``safeaudit sql``, ``runs``, ``report``, the dashboard, the planner's reuse lookup) opens
  the snapshot read-only. A reader that opened an older snapshot keeps reading it undisturbed (the rename
  does not touch its open file); the next connection sees the new one. Readers never block the nightly
  load and the load never breaks a reader.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMA_DIR = SQL_DIR / "schema"
VIEWS_DIR = SQL_DIR / "views"
VIEW_LAYERS = ("stg_", "int_", "mart_")


class WarehouseError(RuntimeError):
    pass


def snapshot_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".snapshot" + path.suffix)


def migrations() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def view_files() -> list[Path]:
    files = list(VIEWS_DIR.glob("*.sql"))

    def order(p: Path) -> tuple[int, str]:
        for i, prefix in enumerate(VIEW_LAYERS):
            if p.name.startswith(prefix):
                return i, p.name
        return len(VIEW_LAYERS), p.name

    return sorted(files, key=order)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply schema files not yet recorded in ``schema_migrations``, each in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
    )
    done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for path in migrations():
        version = path.stem
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text())
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)",
                [version, datetime.now(UTC).replace(tzinfo=None)],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    for path in view_files():
        try:
            con.execute(path.read_text())
        except duckdb.Error as exc:
            raise WarehouseError(f"{path}: {str(exc).splitlines()[0]}") from None


@contextmanager
def writer(path: str | Path, publish: bool = True):
    """The single writing connection: migrated, views current; publishes the read snapshot on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        migrate(con)
        create_views(con)
        yield con
        con.execute("CHECKPOINT")
    finally:
        con.close()
    if publish:
        publish_snapshot(path)


def publish_snapshot(path: str | Path) -> Path:
    """Copy the (checkpointed, closed) warehouse to the read snapshot and swap it in atomically."""
    path = Path(path)
    snap = snapshot_path(path)
    tmp = snap.with_name(f".{snap.name}.{os.getpid()}.tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, snap)
    return snap


def reader(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the latest snapshot (or the main file when no snapshot exists yet).

    The file is ATTACHed to a private in-memory database rather than opened with ``connect(path)``:
    DuckDB shares one instance per path inside a process, so while any older connection is open a plain
    connect would keep reading the snapshot that the loader has since replaced.
    """
    path = Path(path)
    snap = snapshot_path(path)
    target = snap if snap.exists() else path
    if not target.exists():
        raise WarehouseError(f"warehouse {path} does not exist yet (run `safeaudit run SPEC` first)")
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH ? AS warehouse (READ_ONLY)", [str(target)])
        con.execute("USE warehouse")
    except duckdb.Error:
        con.close()
        raise
    return con


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
