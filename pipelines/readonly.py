"""The one way to read the warehouse: a locked-down connection to the published read snapshot.

Every reader uses it: ``safeaudit sql`` / ``runs`` / ``report``, the planner's reuse lookup, validation's
frames and the dashboard. What it guarantees, whatever SQL arrives:

- Only the **snapshot** is opened, never the main file (a reader on the main file would block the only
  writer); no snapshot yet means one line telling the user to run a load.
- The snapshot is ATTACHed ``READ_ONLY`` to a private in-memory database, then external access is turned
  off (no file reads or writes: ``read_text``, ``read_csv``, ``COPY``, ``EXPORT``, ``ATTACH``, extensions,
  secrets), extension auto-install/auto-load and Python replacement scans are off, and the configuration is
  locked, so no statement can turn any of that back on.
- :func:`check_query` lets through one SELECT and nothing else, judged by DuckDB's own parser (statement
  types, not a regex): ``ATTACH``, ``COPY``, ``CREATE``, ``SET``, ``PRAGMA``, ``CALL``, ``INSTALL`` ... are
  refused before anything runs.

Why ATTACH rather than ``connect(path, read_only=True)``: DuckDB shares one instance per path inside a
process, so a plain connect would keep reading a snapshot the loader has since replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from pipelines.queries import render
from pipelines.warehouse import WarehouseError, snapshot_path

CATALOG = "warehouse"
# applied in this order, before the lock; external access goes last but one: ATTACH needs it
LOCKED_SETTINGS: tuple[tuple[str, Any], ...] = (
    ("enable_progress_bar", False),  # readers print their own tables
    ("python_enable_replacements", False),  # no query may read a Python variable by name
    ("autoinstall_known_extensions", False),
    ("autoload_known_extensions", False),
    ("allow_community_extensions", False),
    ("enable_external_access", False),
    ("lock_configuration", True),
)
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT})


def snapshot_of(warehouse: str | Path) -> Path:
    """The published read snapshot of ``warehouse``; one-line ``WarehouseError`` when there is none yet."""
    warehouse = Path(warehouse)
    snap = snapshot_path(warehouse)
    if snap.exists():
        return snap
    if warehouse.exists():
        raise WarehouseError(
            f"warehouse {warehouse} has no read snapshot yet (readers never open the main file): "
            "run `safeaudit load RUN_ID` to publish one"
        )
    raise WarehouseError(f"warehouse {warehouse} does not exist yet (run `safeaudit run SPEC` first)")


def open_snapshot(path: str | Path, settings: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A locked-down read-only connection to exactly this DuckDB file, as catalog ``warehouse`` (in use).

    ``settings``: extra DuckDB settings a trusted caller wants, applied before the lock (nothing can change
    them afterwards)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(render("readonly/attach", catalog=CATALOG), [str(path)])
        con.execute(render("readonly/use", catalog=CATALOG))
        for name, value in [*(settings or {}).items(), *LOCKED_SETTINGS]:
            con.execute(render("readonly/set", setting=name), [value])  # names are ours, never the query's
    except Exception:
        con.close()
        raise
    return con


def reader(warehouse: str | Path) -> duckdb.DuckDBPyConnection:
    """A locked-down read-only connection to the latest snapshot of ``warehouse``."""
    return open_snapshot(snapshot_of(warehouse))


def check_query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement:
    """The one read statement of ``sql``; ``WarehouseError`` (one line) for anything else."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise WarehouseError(str(exc).splitlines()[0]) from None
    for statement in statements:  # any write, file access or setting in the text refuses all of it
        if statement.type not in READ_STATEMENTS:
            raise WarehouseError(
                f"refused {statement.type.name} statement: safeaudit sql runs read queries only (SELECT, "
                "WITH, FROM, DESCRIBE, SHOW, SUMMARIZE)"
            )
    if len(statements) != 1:
        raise WarehouseError(f"expected one read query, got {len(statements)} statements")
    return statements[0]


def run_query(warehouse: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    """(columns, rows) of one read query on the snapshot: what ``safeaudit sql`` prints."""
    con = reader(warehouse)
    try:
        statement = check_query(con, sql)
        rel = con.execute(statement)  # the statement checked, not a re-parse of the text
        if rel.description is None:
            return [], []
        return [d[0] for d in rel.description], rel.fetchall()
    finally:
        con.close()
