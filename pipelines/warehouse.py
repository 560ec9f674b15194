"""The DuckDB warehouse: migrations, views, and the two ways in (one writer, many snapshot readers).

Concurrency (DuckDB allows one writing process per file, and while it holds the file no other process
can open it, not even read-only):

- ``pipelines/load.py`` is the only writer. It writes ``<name>.duckdb`` and, after each load, publishes a
  **read snapshot** ``<name>.snapshot.duckdb`` by copy to a temp name unique to the publish, fsync, atomic
  rename and fsync of the folder; a failed publish removes its temp, and the next one sweeps temps whose
  publisher died (SIGKILL) or that are older than ``SAFEAUDIT_STALE_TEMP_MIN``.
- Every reader (``safeaudit sql``, ``runs``, ``report``, the dashboard, the planner's reuse lookup) opens
  only the snapshot, through the one locked-down connection of ``pipelines.readonly``; before the first
  publish there is nothing to read (one line: run a load). A reader that opened an older snapshot keeps
  reading it undisturbed (the rename does not touch its open file); the next connection sees the new one.
  Readers never block the nightly load and the load never breaks a reader.
- A process outside the project that holds the main file (an analyst's own ``duckdb`` session) makes the
  writer wait up to ``SAFEAUDIT_WRITER_WAIT_S`` seconds (default 30), then fail with one line naming the
  file and the PID that holds it. An existing file that is not a safeaudit warehouse is refused untouched.

Materialised tables (what the dashboard and analysts read hot, over millions of score rows):

- A view file whose header says ``-- materialized: table refreshed by <key>`` becomes a **table** of that
  name, filled from the file's own SELECT: the file stays the single definition. Every other file is a view.
- ``writer()`` refreshes those tables on exit, in one transaction, before it checkpoints and publishes the
  snapshot. So every writer (the loader, validation, the label merge, a test fixture's inserts) leaves them
  equal to their SQL over the base tables. A failed refresh rolls back (tables and change state), nothing is
  published, and the next writer redoes it.
- ``refresh`` is incremental where the base tables say what changed: score rows appended since the last
  refresh (a rowid watermark, checked by a row count and hash sum over ``scores``) give the generations, and
  per-run hash sums of the staging views give the runs. Each table recomputes only its keys, with its inputs
  narrowed to them by temp tables built once per refresh and shared (``scores`` read past the watermark, a
  refreshed table's new rows reused by the tables above it). It rebuilds in full what it cannot account for:
  edited or deleted score rows, a changed rule, changed view files or migrations.
- ``create_views`` does nothing when the view files and migrations are unchanged (a fingerprint in
  ``meta.views_state``); that saved ~0.2 s per writer open. Bookkeeping lives in the ``meta`` schema.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMA_DIR = SQL_DIR / "schema"
VIEWS_DIR = SQL_DIR / "views"
VIEW_LAYERS = ("stg_", "int_", "mart_")
# Bump when the refresh machinery changes meaning: every warehouse then rebuilds its tables once.
REFRESH_VERSION = "1"
META = "meta"  # bookkeeping schema (not part of the documented `main` schema)
MATERIALIZED = re.compile(
    r"^--\s*materialized:\s*table refreshed by (run_id|generation_id)"
    r"(?:\s*\(narrowed inputs:\s*([\w, ]+)\))?",
    re.MULTILINE,
)
CREATE_VIEW = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)\s+AS\b", re.IGNORECASE)
# The staging views whose rows, per run, decide every run-keyed table (runs, prompts, generations,
# batches, validations); `scores` and `unsafe_rules` are tracked globally below.
RUN_SOURCES = ("stg_runs", "stg_run_prompts", "stg_generations", "stg_batches", "stg_validations")


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
    for (version,) in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall():
        h.update(f"migration {version}\n".encode())
    for d in view_defs():
        h.update(f"{d.path.name}\n{d.text}\n".encode())
    return h.hexdigest()


def _ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {META}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.views_state (fingerprint VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)"
    )
    # per (source, run): row count and a sum of row hashes of the staging view, at the last refresh
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.run_signatures "
        "(source VARCHAR NOT NULL, run_id VARCHAR, n BIGINT NOT NULL, sig HUGEINT NOT NULL)"
    )
    # whole-table state: scores (append watermark: next rowid) and unsafe rules
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.table_state "
        "(source VARCHAR PRIMARY KEY, n BIGINT NOT NULL, sig HUGEINT NOT NULL, next_rowid BIGINT)"
    )
    # the generations of each run at the last refresh: a run that lost images must recompute them
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.run_generations (run_id VARCHAR NOT NULL, generation_id VARCHAR NOT NULL)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.refresh_log (refreshed_at TIMESTAMP NOT NULL, mode VARCHAR NOT NULL, "
        "n_runs BIGINT, n_generations BIGINT, seconds DOUBLE)"
    )


def _kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    rows = con.execute(
        "SELECT 'table' FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = $1 UNION ALL "
        "SELECT 'view' FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND view_name = $1",
        [name],
    ).fetchall()
    return rows[0][0] if rows else None


def create_views(con: duckdb.DuckDBPyConnection, force: bool = False) -> bool:
    """Create the views and (re)build the materialised tables, unless nothing they depend on changed.

    Returns whether it did anything. One transaction: a failure leaves the previous objects.
    """
    _ensure_meta(con)
    fingerprint = views_fingerprint(con)
    stored = con.execute(f"SELECT fingerprint FROM {META}.views_state").fetchall()
    if not force and stored == [(fingerprint,)]:
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        for d in view_defs():
            kind = _kind(con, d.name)
            wanted = "table" if d.key else "view"
            if kind and kind != wanted:
                con.execute(f"DROP {kind.upper()} {d.name}")  # noqa: S608 - names from our own files
            try:
                if d.key:
                    # the full build: the file's SELECT over the (already rebuilt) tables before it
                    con.execute(f"CREATE OR REPLACE TABLE {d.name} AS SELECT * FROM (\n{d.select})")
                else:
                    con.execute(d.text)
            except duckdb.Error as exc:
                raise WarehouseError(f"{d.path}: {str(exc).splitlines()[0]}") from None
        _record_state(con)
        con.execute(f"DELETE FROM {META}.views_state")
        con.execute(f"INSERT INTO {META}.views_state VALUES (?, ?)", [fingerprint, now()])
        con.execute(f"INSERT INTO {META}.refresh_log VALUES (?, 'rebuild', NULL, NULL, NULL)", [now()])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return True


def live_views(con: duckdb.DuckDBPyConnection) -> None:
    """Shadow every view and materialised table with its SQL file on this connection (TEMP views).

    Afterwards ``mart_tradeoff`` and friends compute from the base tables as plain views would: what the
    materialised tables must equal (tests, or an analyst checking a table). Drop with ``DROP VIEW temp.x``
    or close the connection.
    """
    for d in view_defs():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {d.name} AS {d.select}")  # noqa: S608 - our own files


# -- change detection and refresh ------------------------------------------------------------------------------
def _row_hash(con: duckdb.DuckDBPyConnection, relation: str, exclude: tuple[str, ...] = ()) -> str:
    """``hash(c1, c2, ...)`` over every column of a table or view (a struct hash is ~2x slower)."""
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
            "AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [relation],
        ).fetchall()
        if r[0] not in exclude
    ]
    return "hash(" + ", ".join(f'"{c}"' for c in cols) + ")"


def _run_signatures_sql(con: duckdb.DuckDBPyConnection) -> str:
    return " UNION ALL ".join(
        f"SELECT '{src}' AS source, run_id, count(*) AS n, sum({_row_hash(con, src)}) AS sig "  # noqa: S608
        f"FROM {src} GROUP BY run_id"
        for src in RUN_SOURCES
    )


def _scores_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows, sum of row hashes, next rowid) of ``scores``."""
    n, sig, last = con.execute(
        f"SELECT count(*), coalesce(sum({_row_hash(con, 'scores')}), 0), max(rowid) FROM scores"  # noqa: S608
    ).fetchall()[0]
    return n, sig, -1 if last is None else last + 1


def _rules_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    return con.execute(
        f"SELECT count(*), coalesce(sum({_row_hash(con, 'stg_unsafe_rules')}), 0) FROM stg_unsafe_rules"  # noqa: S608
    ).fetchall()[0]


@dataclass
class Changes:
    full: bool
    runs: int = 0
    generations: int = 0
    reason: str = ""
    scores_now: tuple[int, int, int] | None = None  # (rows, hash sum, next rowid) measured by _changes
    watermark: int = -1  # the next rowid of scores at the last refresh
    seconds: dict[str, float] = field(default_factory=dict)  # per step: detect, each table, record_state


def _record_state(con: duckdb.DuckDBPyConnection, changes: Changes | None = None) -> None:
    """Remember the base tables as the materialised tables now reflect them (inside the caller's transaction).

    After an incremental refresh, ``changes`` carries what ``_changes`` already measured (the state of
    ``scores``, this moment's run signatures in ``temp.run_signatures_now``), so nothing is scanned twice and
    only the changed runs' generation lists are rewritten."""
    con.execute(f"DELETE FROM {META}.run_signatures")
    if changes is not None and changes.scores_now is not None:
        con.execute(f"INSERT INTO {META}.run_signatures SELECT * FROM temp.run_signatures_now")
        changed = "SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations'"
        con.execute(f"DELETE FROM {META}.run_generations WHERE run_id IN ({changed})")  # noqa: S608
        con.execute(
            f"INSERT INTO {META}.run_generations SELECT run_id, generation_id FROM stg_generations "  # noqa: S608
            f"WHERE run_id IN ({changed})"
        )
        n, sig, next_rowid = changes.scores_now
    else:
        con.execute(f"INSERT INTO {META}.run_signatures {_run_signatures_sql(con)}")  # noqa: S608
        con.execute(f"DELETE FROM {META}.run_generations")
        con.execute(f"INSERT INTO {META}.run_generations SELECT run_id, generation_id FROM stg_generations")
        n, sig, next_rowid = _scores_state(con)
    rules_n, rules_sig = _rules_state(con)
    con.execute(f"DELETE FROM {META}.table_state")
    con.execute(
        f"INSERT INTO {META}.table_state VALUES ('scores', ?, ?, ?), ('stg_unsafe_rules', ?, ?, NULL)",
        [n, sig, next_rowid, rules_n, rules_sig],
    )


def _changes(con: duckdb.DuckDBPyConnection) -> Changes:
    """Fill ``temp.refresh_runs`` / ``temp.refresh_generations`` with the keys whose rows may differ.

    Generations: those with score rows appended since the last refresh (rowid at or past the watermark),
    plus every generation, old or new, of a run whose generations changed. Runs: those whose staging rows
    changed (a per-run count and sum of row hashes), plus every run holding one of those generations as an
    image or as a baseline. Anything else (score rows deleted or edited, rules changed) asks for a full
    refresh: the checksums over the whole of ``scores`` and ``stg_unsafe_rules`` say whether it happened.
    """
    state = dict(
        (
            (src, (n, sig, nxt))
            for src, n, sig, nxt in con.execute(f"SELECT * FROM {META}.table_state").fetchall()
        )
    )
    if "scores" not in state or "stg_unsafe_rules" not in state:
        return Changes(full=True, reason="no refresh state")
    if _rules_state(con) != state["stg_unsafe_rules"][:2]:
        return Changes(full=True, reason="unsafe rules changed")
    old_n, old_sig, watermark = state["scores"]
    n, sig, next_rowid = _scores_state(con)
    new_n, new_sig = con.execute(
        f"SELECT count(*), coalesce(sum({_row_hash(con, 'scores')}), 0) FROM scores WHERE rowid >= ?",  # noqa: S608
        [watermark],
    ).fetchall()[0]
    if (n, sig) != (old_n + new_n, old_sig + new_sig):
        return Changes(full=True, reason="score rows deleted or edited")
    con.execute(f"CREATE OR REPLACE TEMP TABLE run_signatures_now AS {_run_signatures_sql(con)}")  # noqa: S608
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE changed_sources AS
        SELECT DISTINCT coalesce(a.source, b.source) AS source, coalesce(a.run_id, b.run_id) AS run_id
        FROM temp.run_signatures_now a
        FULL JOIN {META}.run_signatures b ON a.source = b.source AND a.run_id IS NOT DISTINCT FROM b.run_id
        WHERE a.n IS DISTINCT FROM b.n OR a.sig IS DISTINCT FROM b.sig"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE refresh_generations AS
        SELECT DISTINCT generation_id FROM scores WHERE rowid >= $1
        UNION
        SELECT generation_id FROM {META}.run_generations
        WHERE run_id IN (SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations')
        UNION
        SELECT generation_id FROM stg_generations
        WHERE run_id IN (SELECT run_id FROM temp.changed_sources WHERE source = 'stg_generations')""",
        [watermark],
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE refresh_runs AS
        SELECT run_id FROM temp.changed_sources
        UNION
        SELECT run_id FROM stg_generations
        WHERE generation_id IN (SELECT generation_id FROM temp.refresh_generations)
           OR baseline_generation_id IN (SELECT generation_id FROM temp.refresh_generations)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE refresh_run_images AS
        SELECT generation_id FROM stg_generations WHERE run_id IN (SELECT run_id FROM temp.refresh_runs)
        UNION
        SELECT baseline_generation_id FROM stg_generations
        WHERE run_id IN (SELECT run_id FROM temp.refresh_runs) AND baseline_generation_id IS NOT NULL"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE refresh_images AS
        SELECT generation_id FROM temp.refresh_generations UNION SELECT generation_id FROM temp.refresh_run_images"""
    )
    # the images that had score rows at the last refresh (stg_scores holds a row for each): only theirs can
    # sit before the watermark (rows appended since are past it, checked above)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE previously_scored AS SELECT DISTINCT generation_id FROM stg_scores
        WHERE generation_id IN (SELECT generation_id FROM temp.refresh_images)"""
    )
    runs = con.execute("SELECT count(*) FROM temp.refresh_runs").fetchall()[0][0]
    gens = con.execute("SELECT count(*) FROM temp.refresh_generations").fetchall()[0][0]
    return Changes(
        full=False, runs=runs, generations=gens, scores_now=(n, sig, next_rowid), watermark=watermark
    )


def _columns(con: duckdb.DuckDBPyConnection, db: str, name: str) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_schema = 'main' "
            "AND table_name = ?",
            [db, name],
        ).fetchall()
    }


@dataclass
class _Narrowing:
    """One incremental refresh's narrowed inputs: temp tables shared by every table refreshed after them."""

    watermark: int  # score rows at or past this rowid were appended since the last refresh
    tables: dict[str, str] = field(default_factory=dict)  # "input.column" -> temp table of its narrowed rows
    fresh: dict[str, tuple[str, str]] = field(default_factory=dict)  # refreshed table -> (its new rows, key)
    created: set[str] = field(default_factory=set)  # temp tables to drop at the end

    def temp_table(self, con: duckdb.DuckDBPyConnection, table: str, sql: str) -> str:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}")
        self.created.add(table)
        return table


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]  # noqa: S608


def _narrowed(con: duckdb.DuckDBPyConnection, db: str, name: str, column: str, nw: _Narrowing) -> str:
    """A temp table of ``name``'s rows for the refreshed keys, built on first use and shared by the tables
    refreshed after it (``stg_scores`` is read by four of them: one pass per refresh instead of one per
    reader). By ``run_id``: the refreshed runs. By ``generation_id``: the refreshed generations and the
    refreshed runs' images (``temp.refresh_images``), a superset of what each reader keeps.

    Two shortcuts avoid scanning a 10 M-row table for 100 k keys: a table refreshed by ``column`` just now
    has its rows for its own keys in ``nw.fresh`` (the table is read only for the other keys, if any); and
    ``scores`` is read by rowid past the watermark (the appended rows), plus, only for images that had score
    rows at the last refresh (``temp.previously_scored``), their older rows."""
    entry = f"{name}.{column}"
    if entry in nw.tables:
        return nw.tables[entry]
    wanted = (
        "SELECT run_id FROM temp.refresh_runs"
        if column == "run_id"
        else "SELECT generation_id FROM temp.refresh_images"
    )
    main = f'"{db}".main.{name}'
    fresh_key = nw.fresh.get(name)
    if fresh_key is not None and fresh_key[1] == column:
        rest = f"{wanted} EXCEPT SELECT {column} FROM temp.refresh_{column.removesuffix('_id')}s"
        if not _count(con, rest):  # the new rows are all the readers need: no copy
            nw.tables[entry] = fresh_key[0]
            return fresh_key[0]
        sql = f"SELECT * FROM temp.main.{fresh_key[0]} UNION ALL SELECT * FROM {main} WHERE {column} IN ({rest})"
    elif name == "scores" and column == "generation_id":
        sql = f"SELECT * FROM {main} WHERE rowid >= {int(nw.watermark)} AND generation_id IN ({wanted})"
        if _count(con, "SELECT generation_id FROM temp.previously_scored"):
            sql += (
                f" UNION ALL SELECT * FROM {main} WHERE rowid < {int(nw.watermark)} "
                "AND generation_id IN (SELECT generation_id FROM temp.previously_scored)"
            )
    else:
        sql = f"SELECT * FROM {main} WHERE {column} IN ({wanted})"
    nw.tables[entry] = nw.temp_table(con, f"narrowed_{name}_{column}", sql)
    return nw.tables[entry]


def _refresh_one(con: duckdb.DuckDBPyConnection, d: ViewDef, db: str, nw: _Narrowing) -> None:
    keys = f"SELECT {d.key} FROM temp.refresh_{d.key.removesuffix('_id')}s"
    # Narrowing: while this table is recomputed, each narrowed input is seen only for the refreshed keys
    # (temp views shadow main objects of the same name, also inside the views the SELECT reads): by the key
    # when the input has that column, else (a run-keyed table reading per-image rows) by the images of the
    # refreshed runs and their baselines. Sound because the file states that a key's rows depend only on
    # those input rows. The views read the shared temp tables of ``_narrowed``.
    for name in d.narrowed:
        if d.key in _columns(con, db, name):
            column, where = d.key, f"{d.key} IN ({keys})"
        elif d.key == "run_id" and "generation_id" in _columns(con, db, name):
            column, where = (
                "generation_id",
                "generation_id IN (SELECT generation_id FROM temp.refresh_run_images)",
            )
        else:
            raise WarehouseError(f"{d.path}: cannot narrow {name} by {d.key}")
        table = _narrowed(con, db, name, column, nw)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM temp.main.{table} WHERE {where}")  # noqa: S608
    try:
        select = f"SELECT * FROM (\n{d.select}) WHERE {d.key} IN ({keys})"  # noqa: S608
        fresh = nw.temp_table(con, f"fresh_{d.name}", select)  # kept: later readers narrow it from here
    finally:
        for name in d.narrowed:
            con.execute(f"DROP VIEW IF EXISTS temp.main.{name}")
    # stg_scores holds a row for every image with score rows: an image that had none at the last refresh
    # has no rows to delete (for a new run's 100 k images this skips a scan of the whole table)
    gone = keys
    if d.name == "stg_scores":
        gone = f"{keys} INTERSECT SELECT generation_id FROM temp.previously_scored"
    if d.name != "stg_scores" or _count(con, gone):
        con.execute(f'DELETE FROM "{db}".main.{d.name} WHERE {d.key} IN ({gone})')  # noqa: S608
    con.execute(f'INSERT INTO "{db}".main.{d.name} SELECT * FROM temp.main.{fresh}')  # noqa: S608
    # this table's rows changed: a later reader narrows it afresh, from the rows just computed
    for column in ("run_id", "generation_id"):
        if (table := nw.tables.pop(f"{d.name}.{column}", None)) is not None:
            con.execute(f"DROP TABLE IF EXISTS temp.main.{table}")
    nw.fresh[d.name] = (fresh, d.key)


def refresh(con: duckdb.DuckDBPyConnection, full: bool = False) -> Changes:
    """Bring every materialised table up to date with the base tables, in one transaction.

    Incremental for the keys ``_changes`` finds, else (or with ``full``) recomputed whole. On any error the
    transaction rolls back: the tables and the change state stay as they were, so the next writer retries.
    """
    t0 = time.perf_counter()
    db = con.execute("SELECT current_database()").fetchall()[0][0]
    nw = None
    con.execute("BEGIN TRANSACTION")
    try:
        changes = Changes(full=True, reason="asked") if full else _changes(con)
        changes.seconds["detect"] = time.perf_counter() - t0
        if changes.full or changes.runs or changes.generations:
            nw = _Narrowing(watermark=changes.watermark)
            for d in materialized():
                t = time.perf_counter()
                if changes.full:
                    con.execute(f"DELETE FROM {d.name}")  # noqa: S608
                    con.execute(f"INSERT INTO {d.name} SELECT * FROM (\n{d.select})")  # noqa: S608
                else:
                    _refresh_one(con, d, db, nw)
                changes.seconds[d.name] = time.perf_counter() - t
            t = time.perf_counter()
            _record_state(con, None if changes.full else changes)
            changes.seconds["record_state"] = time.perf_counter() - t
            con.execute(
                f"INSERT INTO {META}.refresh_log VALUES (?, ?, ?, ?, ?)",
                [
                    now(),
                    "full: " + changes.reason if changes.full else "incremental",
                    None if changes.full else changes.runs,
                    None if changes.full else changes.generations,
                    time.perf_counter() - t0,
                ],
            )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        for t in (
            "run_signatures_now",
            "changed_sources",
            "refresh_runs",
            "refresh_generations",
            "refresh_run_images",
            "refresh_images",
            "previously_scored",
            *(nw.created if nw is not None else ()),
        ):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{t}")
    return changes


@contextmanager
def writer(path: str | Path, publish: bool = True):
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
        con.execute("CHECKPOINT")
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
            con.execute("ATTACH ? AS probe (READ_ONLY)", [str(path)])
            con.execute("USE probe")
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
    db = con.execute("SELECT current_database()").fetchall()[0][0]
    objects = con.execute(
        "SELECT count(*) FROM (SELECT schema_name FROM duckdb_tables() WHERE database_name = $1 "
        "UNION ALL SELECT schema_name FROM duckdb_views() WHERE database_name = $1 AND NOT internal "
        "UNION ALL SELECT schema_name FROM duckdb_schemas() WHERE database_name = $1 AND NOT internal "
        "AND schema_name <> 'main')",
        [db],
    ).fetchall()[0][0]
    if not objects:
        return
    try:  # our marker: the first migration recorded in our own bookkeeping table
        ours = con.execute("SELECT count(*) FROM schema_migrations WHERE version = '001_core'").fetchall()
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
