"""The incremental refresh of the materialised tables (the files of ``sql/views`` marked ``-- materialized``).

``pipelines.warehouse.writer`` calls :func:`refresh` on exit, in one transaction, before it checkpoints and
publishes the read snapshot, so every writer leaves each table equal to its SQL over the base tables. A failed
refresh rolls back (tables and change state) and the next writer redoes it. The SQL is in
``sql/queries/refresh/*.sql``; a table's own SELECT is its view file's text, bound as a value and parsed by
DuckDB's ``query()``, so the file stays the single definition.

Incremental where the base tables say what changed: score rows appended since the last refresh (a rowid
watermark, checked by a row count and hash sum over ``scores``) give the generations, and per-run hash sums
of the staging views give the runs. Each table recomputes only its keys, with its inputs narrowed to them by
temp tables built once per refresh and shared (``scores`` read past the watermark, a refreshed table's new
rows reused by the tables above it). It rebuilds in full what it cannot account for: edited or deleted score
rows, a changed rule (changed view files or migrations rebuild in ``warehouse.create_views``).

dbt-duckdb's incremental models were measured against this engine (bench/bench_refresh_dbt.py, RESULTS.md
part 7); the engine stays because dbt did not meet 1.5x its refresh time. ``sql/dbt`` renders the same files
as a dbt project for tests, docs and lineage.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb

from pipelines.queries import query, render

if TYPE_CHECKING:
    from pipelines.warehouse import ViewDef

META = (
    "meta"  # bookkeeping schema (not part of the documented `main` schema); named in the refresh/*.sql files
)
# The staging views whose rows, per run, decide every run-keyed table (runs, prompts, generations,
# batches, validations); `scores` and `unsafe_rules` are tracked globally below.
RUN_SOURCES = ("stg_runs", "stg_run_prompts", "stg_generations", "stg_batches", "stg_validations")
# the temp tables of the change sets, dropped after every refresh
CHANGE_TABLES = (
    "run_signatures_now",
    "changed_sources",
    "refresh_runs",
    "refresh_generations",
    "refresh_run_images",
    "refresh_images",
    "previously_scored",
)
# which temp table holds the refreshed keys of each key column
KEY_TABLES = {"run_id": "refresh_runs", "generation_id": "refresh_generations"}


class RefreshError(RuntimeError):
    """A materialised file whose header the engine cannot follow (an input it cannot narrow by the key)."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _one(con: duckdb.DuckDBPyConnection, name: str, params: Sequence[object] = (), **slots: str) -> tuple:
    text = render(name, **slots) if slots else query(name)
    return con.execute(text, list(params)).fetchall()[0]


def _run(con: duckdb.DuckDBPyConnection, name: str, params: Sequence[object] = (), **slots: str) -> None:
    con.execute(render(name, **slots) if slots else query(name), list(params))


def ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    """Create the bookkeeping schema and tables if missing (views_state, run_signatures, table_state,
    run_generations, refresh_log)."""
    for name in (
        "meta_schema",
        "meta_views_state",
        "meta_run_signatures",
        "meta_table_state",
        "meta_run_generations",
        "meta_refresh_log",
    ):
        _run(con, f"refresh/{name}")


def log(
    con: duckdb.DuckDBPyConnection, mode: str, runs: int | None, gens: int | None, seconds: float | None
) -> None:
    _run(con, "refresh/log", [_now(), mode, runs, gens, seconds])


# -- change detection -----------------------------------------------------------------------------------------
def _run_signatures(con: duckdb.DuckDBPyConnection, dest: str) -> None:
    """Append per (staging view, run) row counts and hash sums to ``dest``."""
    for src in RUN_SOURCES:
        _run(con, "refresh/run_signature", [src], dest=dest, src=src)


def _scores_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows, sum of row hashes, next rowid) of ``scores``."""
    return _one(con, "refresh/scores_state")


def _rules_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    return _one(con, "refresh/rules_state")


@dataclass
class Changes:
    full: bool
    runs: int = 0
    generations: int = 0
    reason: str = ""
    scores_now: tuple[int, int, int] | None = None  # (rows, hash sum, next rowid) measured by _changes
    watermark: int = -1  # the next rowid of scores at the last refresh
    seconds: dict[str, float] = field(default_factory=dict)  # per step: detect, each table, record_state


def record_state(con: duckdb.DuckDBPyConnection, changes: Changes | None = None) -> None:
    """Remember the base tables as the materialised tables now reflect them (inside the caller's transaction).

    After an incremental refresh, ``changes`` carries what ``_changes`` already measured (the state of
    ``scores``, this moment's run signatures in ``temp.run_signatures_now``), so nothing is scanned twice and
    only the changed runs' generation lists are rewritten."""
    _run(con, "refresh/run_signatures_clear")
    if changes is not None and changes.scores_now is not None:
        _run(con, "refresh/run_signatures_keep")
        _run(con, "refresh/run_generations_clear_changed")
        _run(con, "refresh/run_generations_add_changed")
        n, sig, next_rowid = changes.scores_now
    else:
        _run_signatures(con, f"{META}.run_signatures")
        _run(con, "refresh/run_generations_clear")
        _run(con, "refresh/run_generations_all")
        n, sig, next_rowid = _scores_state(con)
    rules_n, rules_sig = _rules_state(con)
    _run(con, "refresh/table_state_clear")
    _run(con, "refresh/table_state_write", [n, sig, next_rowid, rules_n, rules_sig])


def _count(con: duckdb.DuckDBPyConnection, tmp: str) -> int:
    return _one(con, "refresh/count", tmp=tmp)[0]


def _changes(con: duckdb.DuckDBPyConnection) -> Changes:
    """Fill ``temp.refresh_runs`` / ``temp.refresh_generations`` with the keys whose rows may differ.

    Generations: those with score rows appended since the last refresh (rowid at or past the watermark),
    plus every generation, old or new, of a run whose generations changed. Runs: those whose staging rows
    changed (a per-run count and sum of row hashes), plus every run holding one of those generations as an
    image or as a baseline. Anything else (score rows deleted or edited, rules changed) asks for a full
    refresh: the checksums over the whole of ``scores`` and ``stg_unsafe_rules`` say whether it happened.
    """
    rows = con.execute(query("refresh/table_state_read")).fetchall()
    state = {src: (n, sig, nxt) for src, n, sig, nxt in rows}
    if "scores" not in state or "stg_unsafe_rules" not in state:
        return Changes(full=True, reason="no refresh state")
    if _rules_state(con) != state["stg_unsafe_rules"][:2]:
        return Changes(full=True, reason="unsafe rules changed")
    old_n, old_sig, watermark = state["scores"]
    n, sig, next_rowid = _scores_state(con)
    new_n, new_sig = _one(con, "refresh/scores_appended", [watermark])
    if (n, sig) != (old_n + new_n, old_sig + new_sig):
        return Changes(full=True, reason="score rows deleted or edited")
    _run(con, "refresh/run_signatures_empty")
    _run_signatures(con, "temp.run_signatures_now")
    _run(con, "refresh/changed_sources")
    _run(con, "refresh/refresh_generations", [watermark])
    for name in ("refresh_runs", "refresh_run_images", "refresh_images", "previously_scored"):
        _run(con, f"refresh/{name}")
    return Changes(
        full=False,
        runs=_count(con, "refresh_runs"),
        generations=_count(con, "refresh_generations"),
        scores_now=(n, sig, next_rowid),
        watermark=watermark,
    )


# -- the incremental step -------------------------------------------------------------------------------------
def _columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    return {r[0] for r in con.execute(query("refresh/columns"), [name]).fetchall()}


@dataclass
class _Narrowing:
    """One incremental refresh's narrowed inputs: temp tables shared by every table refreshed after them."""

    watermark: int  # score rows at or past this rowid were appended since the last refresh
    tables: dict[str, str] = field(default_factory=dict)  # "input.column" -> temp table of its narrowed rows
    fresh: dict[str, tuple[str, str]] = field(default_factory=dict)  # refreshed table -> (its new rows, key)
    created: set[str] = field(default_factory=set)  # temp tables to drop at the end

    def temp_table(self, con: duckdb.DuckDBPyConnection, tmp: str, name: str, params=(), **slots: str) -> str:
        _run(con, name, params, tmp=tmp, **slots)
        self.created.add(tmp)
        return tmp


def _narrowed(con: duckdb.DuckDBPyConnection, name: str, column: str, nw: _Narrowing) -> str:
    """A temp table of ``name``'s rows for the refreshed keys, built on first use and shared by the tables
    refreshed after it (``stg_scores`` is read by four of them: one pass per refresh instead of one per
    reader). By ``run_id``: the refreshed runs. By ``generation_id``: the refreshed generations and the
    refreshed runs' images (``temp.refresh_images``), a superset of what each reader keeps.

    Two shortcuts avoid scanning a 10 M-row table for 100 k keys: a table refreshed by ``column`` just now
    has its rows for its own keys in ``nw.fresh`` (the table is read only for the other keys, if any); and
    ``scores`` is read by rowid past the watermark (the appended rows), plus, only for images that had score
    rows at the last refresh (``temp.previously_scored``), their older rows.

    Called before any input is shadowed (``_refresh_one``), so ``name`` is the main object."""
    entry = f"{name}.{column}"
    if entry in nw.tables:
        return nw.tables[entry]
    wanted = "refresh_runs" if column == "run_id" else "refresh_images"
    tmp = f"narrowed_{name}_{column}"
    fresh_key = nw.fresh.get(name)
    if fresh_key is not None and fresh_key[1] == column:
        done = KEY_TABLES[column]
        slots = {"col": column, "keys": wanted, "done": done}
        if not _one(con, "refresh/count_outside", **slots)[0]:  # the new rows are all the readers need
            nw.tables[entry] = fresh_key[0]
            return fresh_key[0]
        nw.temp_table(con, tmp, "refresh/narrow_fresh_and_rest", rel=name, fresh=fresh_key[0], **slots)
    elif name == "scores" and column == "generation_id":
        which = "all" if _count(con, "previously_scored") else "appended"
        nw.temp_table(con, tmp, f"refresh/narrow_scores_{which}", [int(nw.watermark)])
    else:
        nw.temp_table(con, tmp, "refresh/narrow_by_keys", rel=name, col=column, keys=wanted)
    nw.tables[entry] = tmp
    return tmp


def _refresh_one(con: duckdb.DuckDBPyConnection, d: ViewDef, nw: _Narrowing) -> None:
    assert d.key is not None
    keys = KEY_TABLES[d.key]
    # Narrowing: while this table is recomputed, each narrowed input is seen only for the refreshed keys
    # (temp views shadow main objects of the same name, also inside the views the SELECT reads): by the key
    # when the input has that column, else (a run-keyed table reading per-image rows) by the images of the
    # refreshed runs and their baselines. Sound because the file states that a key's rows depend only on
    # those input rows. Every narrowed table is built before the first shadow, so each reads main objects.
    shadows = []
    for name in d.narrowed:
        cols = _columns(con, name)
        if d.key in cols:
            column, by = d.key, keys
        elif d.key == "run_id" and "generation_id" in cols:
            column, by = "generation_id", "refresh_run_images"
        else:
            raise RefreshError(f"{d.path}: cannot narrow {name} by {d.key}")
        shadows.append((name, _narrowed(con, name, column, nw), column, by))
    fresh = f"fresh_{d.name}"
    try:
        for name, tmp, column, by in shadows:
            _run(con, "refresh/shadow", rel=name, tmp=tmp, col=column, keys=by)
        nw.temp_table(con, fresh, "refresh/fresh_rows", [d.select], col=d.key, keys=keys)  # kept for readers
    finally:
        for name in d.narrowed:
            _run(con, "refresh/unshadow", rel=name)
    # stg_scores holds a row for every image with score rows: an image that had none at the last refresh
    # has no rows to delete (for a new run's 100 k images this skips a scan of the whole table)
    if d.name != "stg_scores":
        _run(con, "refresh/delete_keys", rel=d.name, col=d.key, keys=keys)
    elif _one(con, "refresh/count_previously_scored")[0]:
        _run(con, "refresh/delete_previously_scored")
    _run(con, "refresh/insert_fresh", rel=d.name, fresh=fresh)
    # this table's rows changed: a later reader narrows it afresh, from the rows just computed
    for column in ("run_id", "generation_id"):
        if (table := nw.tables.pop(f"{d.name}.{column}", None)) is not None:
            _run(con, "refresh/drop_temp", tmp=table)
    nw.fresh[d.name] = (fresh, d.key)


def refresh(con: duckdb.DuckDBPyConnection, tables: Iterable[ViewDef], full: bool = False) -> Changes:
    """Bring every materialised table (``tables``, in creation order) up to date with the base tables, in one
    transaction.

    Incremental for the keys ``_changes`` finds, else (or with ``full``) recomputed whole. On any error the
    transaction rolls back: the tables and the change state stay as they were, so the next writer retries.
    """
    t0 = time.perf_counter()
    tables = list(tables)
    nw = None
    con.begin()
    try:
        changes = Changes(full=True, reason="asked") if full else _changes(con)
        changes.seconds["detect"] = time.perf_counter() - t0
        if changes.full or changes.runs or changes.generations:
            nw = _Narrowing(watermark=changes.watermark)
            for d in tables:
                t = time.perf_counter()
                if changes.full:
                    _run(con, "refresh/clear", rel=d.name)
                    _run(con, "refresh/fill", [d.select], rel=d.name)
                else:
                    _refresh_one(con, d, nw)
                changes.seconds[d.name] = time.perf_counter() - t
            t = time.perf_counter()
            record_state(con, None if changes.full else changes)
            changes.seconds["record_state"] = time.perf_counter() - t
            if changes.full:
                log(con, "full: " + changes.reason, None, None, time.perf_counter() - t0)
            else:
                log(con, "incremental", changes.runs, changes.generations, time.perf_counter() - t0)
        con.commit()
    except Exception:
        con.rollback()
        raise
    finally:
        for tmp in (*CHANGE_TABLES, *(nw.created if nw is not None else ())):
            _run(con, "refresh/drop_temp", tmp=tmp)
    return changes
