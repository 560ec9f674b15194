"""The DuckDB warehouse: migrations, views, and the two ways in (one writer, many snapshot readers).

Concurrency (DuckDB allows one writing process per file, and while it holds the file no other process
can open it, not even read-only):

- ``pipelines/load.py`` is the only writer. It writes ``<name>.duckdb`` and, after each load, publishes a
  **read snapshot** ``<name>.snapshot.duckdb`` by copy to a temp name unique to the publish, fsync, atomic
  rename and fsync of the folder; a failed publish removes its temp, and the next one sweeps temps whose
  publisher died (SIGKILL) or that are older than ``SAFEAUDIT_STALE_TEMP_MIN``.
- Every reader (``safeaudit sql``, ``runs``, ``report``, the dashboard, the planner's reuse lookup, the dbt
  project's ``dbt test`` / ``dbt docs``) opens only the snapshot, read-only (``pipelines.readonly``; dbt attaches
  it READ_ONLY, ``sql/dbt/profiles.yml``); before the first publish there is nothing to read (one line: run a
  load). A reader that opened an older snapshot keeps reading it undisturbed (the rename does not touch its
  open file); the next connection sees the new one. Readers never block the nightly load and the load never
  breaks a reader.
- A process outside the project that holds the main file (an analyst's own ``duckdb`` session) makes the
  writer wait up to ``SAFEAUDIT_WRITER_WAIT_S`` seconds (default 30), then fail with one line naming the
  file and the PID that holds it. An existing file that is not a safeaudit warehouse is refused untouched.

Materialised tables (what the dashboard and analysts read hot, over millions of score rows):

- A view file whose header says ``-- materialized: table refreshed by <key>`` becomes a **table** of that
  name, filled from the file's own SELECT: the file stays the single definition. Every other file is a view.
- ``writer()`` refreshes those tables on exit (``pipelines.refresh``: incremental, in one transaction) before
  it checkpoints and publishes the snapshot. So every writer (the loader, validation, the label merge, a test
  fixture's inserts) leaves them equal to their SQL over the base tables; a failed refresh publishes nothing.
- ``create_views`` does nothing when the view files and migrations are unchanged (a fingerprint in
  ``meta.views_state``); that saved ~0.2 s per writer open. Bookkeeping lives in the ``meta`` schema.

All SQL text is in ``sql/queries/warehouse/*.sql`` (and ``refresh/``), read through ``pipelines.queries``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import duckdb

from pipelines import refresh as _refresh
from pipelines.queries import query, render

# the refresh engine's names, re-exported for the readers of this module (tests, bench)
from pipelines.refresh import META as META
from pipelines.refresh import RUN_SOURCES as RUN_SOURCES
from pipelines.refresh import Changes

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMA_DIR = SQL_DIR / "schema"
VIEWS_DIR = SQL_DIR / "views"
VIEW_LAYERS = ("stg_", "int_", "mart_")
# Bump when the refresh machinery changes meaning: every warehouse then rebuilds its tables once.
REFRESH_VERSION = "1"
MATERIALIZED = re.compile(
    r"^--\s*materialized:\s*table refreshed by (run_id|generation_id)"
    r"(?:\s*\(narrowed inputs:\s*([\w, ]+)\))?",
    re.MULTILINE,
)
CREATE_VIEW = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)\s+AS\b", re.IGNORECASE)


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
    con.execute(query("warehouse/migrations_table"))
    done = {r[0] for r in con.execute(query("warehouse/migrations_applied")).fetchall()}
    applied = []
    for path in migrations():
        version = path.stem
        if version in done:
            continue
        con.begin()
        try:
            con.execute(path.read_text())
            con.execute(query("warehouse/record_migration"), [version, now()])
            con.commit()
        except Exception:
            con.rollback()
            raise
        applied.append(version)
    return applied


@dataclass(frozen=True)
class ViewDef:
    """One file of ``sql/views``: a view, or a table filled from the file's SELECT (``key`` set)."""

    name: str
    path: Path
    text: str
    key: str | None  # run_id | generation_id: the column a refresh recomputes by
    narrowed: tuple[str, ...]  # inputs restricted to the refreshed keys while refreshing

    @property
    def select(self) -> str:
        """The file's SELECT (what follows ``CREATE OR REPLACE VIEW name AS``), usable as a subquery."""
        m = CREATE_VIEW.search(self.text)
        return self.text[m.end() :].strip().rstrip(";") + "\n"

    @property
    def temp_text(self) -> str:
        """The file as a TEMP view of the same name (``live_views``): only the DDL header differs."""
        return CREATE_VIEW.sub(r"CREATE OR REPLACE TEMP VIEW \1 AS", self.text, count=1)


def view_defs() -> list[ViewDef]:
    out = []
    for path in view_files():
        text = path.read_text()
        m = CREATE_VIEW.search(text)
        if not m or m.group(1) != path.stem:
            raise WarehouseError(f"{path}: expected CREATE OR REPLACE VIEW {path.stem} AS ...")
        mat = MATERIALIZED.search(text[: m.start()])
        narrowed = tuple(x.strip() for x in (mat.group(2) or "").split(",") if x.strip()) if mat else ()
        out.append(ViewDef(path.stem, path, text, mat.group(1) if mat else None, narrowed))
    return out


def materialized() -> list[ViewDef]:
    """The tables the writer refreshes, in creation order (each reads only earlier ones)."""
    return [d for d in view_defs() if d.key]


def views_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """What the views and tables depend on: the view files, the migrations applied, the refresh code."""
    h = hashlib.sha256(f"refresh {REFRESH_VERSION}\n".encode())
    for (version,) in con.execute(query("warehouse/migrations_applied")).fetchall():
        h.update(f"migration {version}\n".encode())
    for d in view_defs():
        h.update(f"{d.path.name}\n{d.text}\n".encode())
    return h.hexdigest()


def _kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    rows = con.execute(query("warehouse/object_kind"), [name]).fetchall()
    return rows[0][0] if rows else None


def create_views(con: duckdb.DuckDBPyConnection, force: bool = False) -> bool:
    """Create the views and (re)build the materialised tables, unless nothing they depend on changed.

    Returns whether it did anything. One transaction: a failure leaves the previous objects.
    """
    _refresh.ensure_meta(con)
    fingerprint = views_fingerprint(con)
    stored = con.execute(query("warehouse/views_fingerprint_read")).fetchall()
    if not force and stored == [(fingerprint,)]:
        return False
    con.begin()
    try:
        for d in view_defs():
            kind = _kind(con, d.name)
            wanted = "table" if d.key else "view"
            if kind and kind != wanted:
                con.execute(render(f"warehouse/drop_{kind}", rel=d.name))
            try:
                if d.key:  # the full build: the file's SELECT over the (already rebuilt) tables before it
                    con.execute(render("warehouse/build_table", rel=d.name), [d.select])
                else:
                    con.execute(d.text)
            except duckdb.Error as exc:
                raise WarehouseError(f"{d.path}: {str(exc).splitlines()[0]}") from None
        _refresh.record_state(con)
        con.execute(query("warehouse/views_fingerprint_clear"))
        con.execute(query("warehouse/views_fingerprint_write"), [fingerprint, now()])
        _refresh.log(con, "rebuild", None, None, None)
        con.commit()
    except Exception:
        con.rollback()
        raise
    return True


def live_views(con: duckdb.DuckDBPyConnection) -> None:
    """Shadow every view and materialised table with its SQL file on this connection (TEMP views).

    Afterwards ``mart_tradeoff`` and friends compute from the base tables as plain views would: what the
    materialised tables must equal (tests, or an analyst checking a table). Drop with ``DROP VIEW temp.x``
    or close the connection.
    """
    for d in view_defs():
        con.execute(d.temp_text)


def refresh(con: duckdb.DuckDBPyConnection, full: bool = False) -> Changes:
    """Bring every materialised table up to date with the base tables (``pipelines.refresh.refresh``)."""
    return _refresh.refresh(con, materialized(), full=full)


@contextmanager
def writer(path: str | Path, publish: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """The single writing connection: migrated, views current; on exit it refreshes the materialised
    tables, checkpoints and publishes the read snapshot (nothing is published if the body or the refresh
    fails).

    Opening waits up to ``SAFEAUDIT_WRITER_WAIT_S`` seconds for another process that holds the file; an
    existing file that is not a safeaudit warehouse is refused untouched, never migrated."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size:
        _probe_existing(path)  # read-only first: a read-write open would replay and checkpoint its WAL
    con = _connect_writer(path)
    try:
        _refuse_foreign(con, path)  # again on the connection that writes (the file may have been swapped)
        migrate(con)
        create_views(con)
        yield con
        refresh(con)
        con.execute(query("warehouse/checkpoint"))
    finally:
        con.close()
    if publish:
        try:
            publish_snapshot(path)
        except OSError as exc:
            raise WarehouseError(
                f"could not publish the read snapshot of {path}: {exc.strerror or exc} (the load is committed; "
                "the next load publishes it)"
            ) from None


# -- opening the one writer ------------------------------------------------------------------------------------
WRITER_WAIT_ENV = "SAFEAUDIT_WRITER_WAIT_S"
WRITER_WAIT_S = 30.0  # default: a reader's query or another load finishing, not a dashboard left open
LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


def _writer_wait_s() -> float:
    raw = os.environ.get(WRITER_WAIT_ENV, "")
    try:
        wait = float(raw) if raw.strip() else WRITER_WAIT_S
    except ValueError:
        wait = -1.0
    if not 0 <= wait < float("inf"):
        raise WarehouseError(f"{WRITER_WAIT_ENV}={raw!r}: expected seconds to wait (a number >= 0)")
    return wait


def _connect_writer(path: Path) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(path)``, retried with backoff while another process holds the file's lock (DuckDB
    allows one process per file while it writes: any reader of the main file, or another writer)."""
    return _retry_locked(path, lambda: duckdb.connect(str(path)))


def _probe_existing(path: Path) -> None:
    """Refuse a foreign database through a read-only ATTACH, which changes nothing on disk."""

    def attach() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        try:
            con.execute(query("warehouse/attach_read_only"), [str(path)])
            con.execute(query("warehouse/use_probe"))
        except Exception:
            con.close()
            raise
        return con

    con = _retry_locked(path, attach)
    try:
        _refuse_foreign(con, path)
    finally:
        con.close()


def _retry_locked(path: Path, open_: Callable[[], duckdb.DuckDBPyConnection]) -> duckdb.DuckDBPyConnection:
    wait = _writer_wait_s()
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return open_()
        except duckdb.IOException as exc:
            text = str(exc)
            if "Could not set lock" not in text:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                holder = LOCK_HOLDER.search(text)
                who = f"PID {holder['pid']} ({holder['program']})" if holder else "another process"
                raise WarehouseError(
                    f"warehouse {path} is locked by {who}; waited {wait:g} s ({WRITER_WAIT_ENV}): close that "
                    "connection (readers should open the read snapshot) and load again"
                ) from None
        time.sleep(min(delay, left))
        delay = min(delay * 2, 1.0)


def _refuse_foreign(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse (before any write) a database that holds objects but was not made by ``migrate``: a file
    passed to ``--warehouse`` by mistake must come out byte for byte as it went in. An empty database (a new
    file) is ours to migrate."""
    db = con.execute(query("warehouse/current_database")).fetchall()[0][0]
    objects = con.execute(query("warehouse/foreign_objects"), [db]).fetchall()[0][0]
    if not objects:
        return
    try:  # our marker: the first migration recorded in our own bookkeeping table
        ours = con.execute(query("warehouse/our_marker")).fetchall()
    except duckdb.Error:
        ours = [(0,)]
    if ours != [(1,)]:
        raise WarehouseError(
            f"{path} is a DuckDB database but not a safeaudit warehouse (no safeaudit schema_migrations): "
            "refused, left untouched; pass a new file or an existing safeaudit warehouse"
        )


# -- publishing the read snapshot ------------------------------------------------------------------------------
STALE_TEMP_ENV = "SAFEAUDIT_STALE_TEMP_MIN"
STALE_TEMP_MIN = 60.0  # a publish copies for seconds to minutes: an hour-old temp is an orphan
COPY_CHUNK = 8 << 20


def _temp_name(snap: Path) -> Path:
    """``.<snapshot>.<pid>.<random>.tmp``: unique per publish, and the pid says whether its writer lives."""
    return snap.with_name(f".{snap.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temps(snap: Path) -> list[Path]:
    """Remove the temps an earlier publish left (killed, or failed before this code cleaned up): those
    whose pid is dead, or older than ``SAFEAUDIT_STALE_TEMP_MIN`` minutes. Returns what it removed."""
    try:
        max_age = float(os.environ.get(STALE_TEMP_ENV) or STALE_TEMP_MIN) * 60
    except ValueError:
        max_age = STALE_TEMP_MIN * 60
    removed = []
    for tmp in snap.parent.glob(f".{snap.name}.*.tmp"):
        pid_text = tmp.name[len(snap.name) + 2 :].split(".", 1)[0]
        try:
            age = time.time() - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        dead = pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))
        if dead or age > max_age:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _copy_file(src: Path, out: BinaryIO) -> None:
    """Copy ``src`` into ``out`` (the temp file, opened by the caller)."""
    with open(src, "rb") as fh:
        shutil.copyfileobj(fh, out, COPY_CHUNK)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_snapshot(path: str | Path) -> Path:
    """Copy the (checkpointed, closed) warehouse to the read snapshot and swap it in atomically.

    Durable and leak-free: the copy goes to a temp name unique to this publish, is fsynced before the
    rename (a crash never leaves a renamed but unwritten snapshot) and the directory after it; on any failure
    (ENOSPC, a signal raising in Python) the temp is removed, and temps of killed publishers are swept here.
    """
    path = Path(path)
    snap = snapshot_path(path)
    sweep_stale_temps(snap)
    tmp = _temp_name(snap)
    done = False
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as out:
            _copy_file(path, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, snap)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
    _fsync_dir(snap.parent)
    return snap


def reader(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A locked-down read-only connection to the latest snapshot (``pipelines.readonly.reader``)."""
    from pipelines.readonly import reader as readonly_reader  # readonly imports this module

    return readonly_reader(path)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
