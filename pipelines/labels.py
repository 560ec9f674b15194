"""The reviewer-label write path: one small JSON file per label beside the warehouse, never the warehouse.

Why not write the ``labels`` table directly: DuckDB lets one process hold a file for writing and then no
other process can open it, so a dashboard that wrote labels would block the nightly load (or be blocked
by it), and the dashboard's own connection is read-only by design. Instead:

1. ``write_label`` (the review page) writes ``<warehouse dir>/labels/<label_id>.json`` atomically: a
   temporary dot-file in the same folder, fsync, ``os.replace``. A reader never sees half a label and a
   crash leaves at most a dot-file, which every reader ignores.
2. ``dashboards.reviewer_labels`` (the dashboard) reads the ``labels`` table of the read snapshot together with these pending
   files (deduplicated by ``label_id``), so a new label shows at once.
3. The loader (the only writer) calls ``merge_labels(con, labels_dir)`` inside its writer connection: one
   ``INSERT OR IGNORE`` keyed by ``label_id``, so merging twice, or merging a file that is already in the
   table, changes nothing. Files stay where they are; ``prune_labels`` removes the ones a *published*
   snapshot already holds (removing them earlier would hide a label between merge and publish).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.queries import query

LABELS = ("unsafe", "safe", "over_censored")
LABELS_DIRNAME = "labels"
ENV_LABELS_DIR = "SAFEAUDIT_LABELS_DIR"  # overrides the folder (e.g. when the warehouse is mounted read-only)
LABEL_ID = re.compile(r"^[0-9a-f]{32}$")  # uuid4().hex: also the file name, so nothing else may pass
MAX_GENERATION_ID = 200
MAX_REVIEWER = 64
MAX_NOTE = 1000
MAX_FILE_BYTES = 16_384
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class LabelError(ValueError):
    """A label that cannot be stored (unknown value, oversized or malformed field)."""


@dataclass(frozen=True)
class Label:
    label_id: str
    generation_id: str
    label: str
    reviewer: str | None
    note: str | None
    labelled_at: datetime  # UTC, naive (as every warehouse timestamp)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"labelled_at": self.labelled_at.isoformat()}


def labels_dir(warehouse: str | Path) -> Path:
    """Where pending labels of a warehouse live: ``$SAFEAUDIT_LABELS_DIR`` when set, else
    ``<warehouse dir>/labels/``. The dashboard and the loader both ask here, so they agree."""
    override = os.environ.get(ENV_LABELS_DIR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(warehouse).resolve().parent / LABELS_DIRNAME


def _text(value: Any, name: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise LabelError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise LabelError(f"{name} must be text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        if required:
            raise LabelError(f"{name} is required")
        return None
    if len(value) > limit:
        raise LabelError(f"{name} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise LabelError(f"{name} contains control characters")
    return value


def make_label(
    generation_id: str,
    label: str,
    reviewer: str | None = None,
    note: str | None = None,
    *,
    label_id: str | None = None,
    labelled_at: datetime | str | None = None,
) -> Label:
    """Validate and build a label; a new ``label_id`` and the current UTC time unless given."""
    if label not in LABELS:
        raise LabelError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    gid = _text(generation_id, "generation_id", MAX_GENERATION_ID, required=True)
    label_id = uuid.uuid4().hex if label_id is None else label_id
    if not isinstance(label_id, str) or not LABEL_ID.match(label_id):
        raise LabelError("label_id must be 32 lower-case hex characters")
    if labelled_at is None:
        labelled_at = datetime.now(UTC).replace(tzinfo=None)
    elif isinstance(labelled_at, str):
        try:
            labelled_at = datetime.fromisoformat(labelled_at)
        except ValueError:
            raise LabelError("labelled_at is not an ISO timestamp") from None
    if labelled_at.tzinfo is not None:
        labelled_at = labelled_at.astimezone(UTC).replace(tzinfo=None)
    return Label(
        label_id=label_id,
        generation_id=gid,  # type: ignore[arg-type]  # required=True never returns None
        label=label,
        reviewer=_text(reviewer, "reviewer", MAX_REVIEWER),
        note=_text(note, "note", MAX_NOTE),
        labelled_at=labelled_at,
    )


def write_label(
    directory: str | Path,
    generation_id: str,
    label: str,
    reviewer: str | None = None,
    note: str | None = None,
    *,
    labelled_at: datetime | None = None,
) -> Label:
    """Store one label as ``<directory>/<label_id>.json`` atomically and return it."""
    lab = make_label(generation_id, label, reviewer, note, labelled_at=labelled_at)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(lab.to_json(), sort_keys=True) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / f"{lab.label_id}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not every file system lets a folder be fsynced
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return lab


def pending_files(directory: str | Path) -> list[Path]:
    """Finished label files (temporary dot-files and anything not named ``<label_id>.json`` are skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.suffix == ".json" and LABEL_ID.match(p.stem) and p.is_file()
    )


def read_pending(directory: str | Path) -> tuple[list[Label], list[str]]:
    """The pending labels, and the names of files that are not valid labels (never raised, only reported)."""
    labels, rejected = [], []
    for path in pending_files(directory):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise LabelError("file too large")
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get("label_id") != path.stem:
                raise LabelError("label_id does not match the file name")
            labels.append(
                make_label(
                    raw.get("generation_id"),
                    raw.get("label"),
                    raw.get("reviewer"),
                    raw.get("note"),
                    label_id=raw["label_id"],
                    labelled_at=raw.get("labelled_at") or "",
                )
            )
        except (OSError, ValueError, TypeError, KeyError):
            rejected.append(path.name)
    return labels, rejected


def merge_labels(con: Any, directory: str | Path) -> dict[str, Any]:
    """Insert the pending label files into the ``labels`` table of a *writer* connection; idempotent.

    One statement (atomic on its own; it joins the caller's transaction when one is open). Returns
    ``{"read": files read, "merged": rows inserted, "rejected": [bad file names]}``.
    """
    import pyarrow as pa

    labels, rejected = read_pending(directory)
    if not labels:
        return {"read": 0, "merged": 0, "rejected": rejected}
    table = pa.Table.from_pylist([asdict(lab) for lab in labels])
    before = con.execute(query("labels/count")).fetchall()[0][0]
    con.register("incoming_labels", table)
    try:
        con.execute(query("labels/merge"))
    finally:
        con.unregister("incoming_labels")
    after = con.execute(query("labels/count")).fetchall()[0][0]
    return {"read": len(labels), "merged": after - before, "rejected": rejected}


def prune_labels(directory: str | Path, merged_label_ids: set[str] | list[str]) -> int:
    """Delete pending files whose label is in ``merged_label_ids`` (read them from a published snapshot)."""
    merged = set(merged_label_ids)
    removed = 0
    for path in pending_files(directory):
        if path.stem in merged:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
