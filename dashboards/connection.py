"""The dashboard's one way into the warehouse: a cached read-only connection to the read snapshot.

* Where: ``SAFEAUDIT_WAREHOUSE`` (default ``warehouse/safeaudit.duckdb``; ``safeaudit dashboard`` sets it),
  ``SAFEAUDIT_ARTIFACTS`` (default ``artifacts``) and ``SAFEAUDIT_LABELS_DIR`` (default ``labels/`` beside
  the warehouse; set it where the warehouse is mounted read-only), read when a page runs, never at import.
* Connection: the read snapshot only (never the main file, which would block the loader), opened by
  ``pipelines.readonly.open_snapshot`` (the same locked-down connection as ``safeaudit sql``), cached per
  snapshot version; one ``cursor()`` per query (a DuckDB connection object is not shared between
  Streamlit's session threads). Not ``duckdb.connect(path)``: DuckDB shares one database instance per path
  inside a process, so while any older connection is open a new one to the same path still reads the
  snapshot the loader has since replaced, and the dashboard would never refresh.
* Freshness: every cached function takes a ``Source`` whose key holds the snapshot's mtime and size, so
  the first rerun after the loader publishes a snapshot reads the new one; nothing needs a restart.
* SQL: only named query files (``sql/queries/<group>/<name>.sql``, ``pipelines.queries``); every value is a
  bound parameter.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pandas as pd
import streamlit as st

from pipelines import labels as label_store
from pipelines.queries import query, render
from pipelines.readonly import CATALOG, open_snapshot, snapshot_of  # the one locked-down reader (CLI too)
from pipelines.warehouse import WarehouseError

ENV_WAREHOUSE = "SAFEAUDIT_WAREHOUSE"
ENV_ARTIFACTS = "SAFEAUDIT_ARTIFACTS"
ENV_LABELS = label_store.ENV_LABELS_DIR
DEFAULT_WAREHOUSE = "warehouse/safeaudit.duckdb"
DEFAULT_ARTIFACTS = "artifacts"


class Source(NamedTuple):
    """What a cached query reads: the configured paths plus the snapshot's identity (the cache key)."""

    warehouse: str
    snapshot: str
    mtime_ns: int
    size: int
    artifacts: str
    labels: str  # where reviewer labels are written and read back from (pipelines.labels)


def source() -> Source:
    """The configured warehouse as it is now; raises ``WarehouseError`` when there is nothing to read."""
    warehouse = Path(os.environ.get(ENV_WAREHOUSE) or DEFAULT_WAREHOUSE).expanduser().resolve()
    artifacts = Path(os.environ.get(ENV_ARTIFACTS) or DEFAULT_ARTIFACTS).expanduser().resolve()
    labels = label_store.labels_dir(warehouse)
    target = snapshot_of(warehouse)  # never the main file: that would block the loader
    try:
        st_ = target.stat()
    except FileNotFoundError:
        raise WarehouseError(f"{target} vanished (run `safeaudit load RUN_ID` to publish it)") from None
    return Source(str(warehouse), str(target), st_.st_mtime_ns, st_.st_size, str(artifacts), str(labels))


@st.cache_resource(max_entries=2, show_spinner=False)
def _connection(snapshot: str, mtime_ns: int, size: int) -> duckdb.DuckDBPyConnection:
    return open_snapshot(snapshot)


def cursor(src: Source) -> duckdb.DuckDBPyConnection:
    """A fresh cursor on the cached snapshot connection, its default catalog the snapshot (close it)."""
    cur = _connection(src.snapshot, src.mtime_ns, src.size).cursor()
    cur.execute(render("readonly/use", catalog=CATALOG))
    return cur


def _close_connections() -> None:
    """Drop cached connections before the interpreter tears DuckDB's module down (avoids nanobind leak
    reports at exit)."""
    _connection.clear()


atexit.register(_close_connections)


def frame(
    src: Source, name: str, params: list[Any] | None = None, register: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The rows of the named query ``name`` (``sql/queries/<name>.sql``) as a DataFrame.

    ``params`` are bound in order ($1, $2, ...); ``register`` names in-memory tables the query reads (the
    pending reviewer labels)."""
    cur = cursor(src)
    try:
        for table, obj in (register or {}).items():
            cur.register(table, obj)
        return cur.execute(query(name), params or []).df()
    finally:
        cur.close()
