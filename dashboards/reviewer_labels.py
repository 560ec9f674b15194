"""Reviewer labels in the dashboard: the write path, and the reads that count a label the moment it is saved.

A label is written through ``pipelines.labels`` (a pending file, never the warehouse connection); reads
combine the ``labels`` table of the snapshot with those pending files (deduplicated by label_id, the named
query ``labels/latest``), registered as an in-memory table on the query's cursor.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboards.connection import Source, cursor
from pipelines import labels as label_store
from pipelines.metrics import wilson_interval
from pipelines.queries import query


def labels_dir(src: Source) -> Path:
    return Path(src.labels)


def pending_version(src: Source) -> tuple[int, int]:
    """Changes whenever a label file is added or removed (the folder's mtime and entry count)."""
    d = labels_dir(src)
    try:
        return d.stat().st_mtime_ns, len(os.listdir(d))
    except OSError:
        return 0, 0


def save_label(src: Source, generation_id: str, label: str, reviewer: str | None, note: str | None):
    """Store a reviewer label through the write path (never the warehouse connection)."""
    return label_store.write_label(labels_dir(src), generation_id, label, reviewer, note)


def _pending_table(src: Source):
    """The pending label files as an Arrow table with the ``labels`` table's columns (empty when none)."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("label_id", pa.string()),
            ("generation_id", pa.string()),
            ("label", pa.string()),
            ("reviewer", pa.string()),
            ("note", pa.string()),
            ("labelled_at", pa.timestamp("us")),
        ]
    )
    pending, _rejected = label_store.read_pending(labels_dir(src))
    return pa.Table.from_pylist(
        [
            {
                "label_id": p.label_id,
                "generation_id": p.generation_id,
                "label": p.label,
                "reviewer": p.reviewer,
                "note": p.note,
                "labelled_at": p.labelled_at,
            }
            for p in pending
        ],
        schema=schema,
    )


def _with_latest(src: Source, name: str) -> pd.DataFrame:
    """The named query ``name``, which reads ``latest``: the latest label per generation over the table and
    the pending files (``labels/latest``, itself reading the registered ``pending_labels``)."""
    cur = cursor(src)
    try:
        cur.register("pending_labels", _pending_table(src))
        latest = cur.sql(query("labels/latest")).to_arrow_table()
        cur.register("latest", latest)
        return cur.execute(query(name)).df()
    finally:
        cur.close()


@st.cache_data(show_spinner=False, max_entries=32)
def latest_labels(src: Source, pending: tuple[int, int]) -> pd.DataFrame:
    """The latest label of each labelled generation (table and pending files), newest first."""
    return _with_latest(src, "dashboard/latest_labels")


@st.cache_data(show_spinner=False, max_entries=32)
def rule_precision(src: Source, pending: tuple[int, int]) -> pd.DataFrame:
    """Each rule's precision and recall with the reviewers' latest labels as ground truth (Wilson 95%: no
    mart holds the pending labels, hence ``pipelines.metrics`` here)."""
    df = _with_latest(src, "dashboard/rule_precision")
    for name, k, extra in (("precision", "tp", "fp"), ("recall", "tp", "fn")):
        n = df[k] + df[extra]
        df[name] = (df[k] / n.where(n > 0)).astype(float)
        ci = [wilson_interval(a, b) if b else (math.nan, math.nan) for a, b in zip(df[k], n, strict=True)]
        df[f"{name}_low"] = [c[0] for c in ci]
        df[f"{name}_high"] = [c[1] for c in ci]
    return df
