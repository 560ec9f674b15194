"""The artifact store: where workers put images and per-batch result files.

Contract (a worker writes only under its batch folder, and ``manifest.json`` last):

    <root>/<run_id>/plan.json                    the expanded plan (written by `plan`)
    <root>/<run_id>/batches/<batch_id>.json      one small batch spec per worker task
    <root>/<run_id>/<batch_id>/images/<generation_id>.png
    <root>/<run_id>/<batch_id>/generations.parquet
    <root>/<run_id>/<batch_id>/manifest.json     written atomically, last: the batch is done
    <root>/<run_id>/<batch_id>/scores.parquet
    <root>/<run_id>/<batch_id>/scores_manifest.json

``root`` is a local folder by default or any fsspec URL (``s3://bucket/prefix``) on a cluster; every file
is written to a temporary name unique to its writer (pid + random) and moved into place (``os.replace``
locally), so a crash leaves no half-written result and two writers of one file never share a temp file:
a reader sees one writer's whole file or the other's.

Errors: a file that cannot be read or parsed raises :class:`ArtifactError`, one that cannot be written
:class:`StorageError`, each one line naming the file (never pyarrow's ``'<Buffer>'``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from pipelines.errors import ArtifactError, StorageError, os_error

THUMB_PX = 128
MANIFEST_KEYS = ("run_id", "batch_id", "n_items", "n_generated", "n_reused", "wall_s", "finished_at")


class Store:
    def __init__(self, root: str | Path):
        self.root = str(root)
        self.fs, base = fsspec.core.url_to_fs(self.root)
        self.local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol
        self.base = str(Path(base).resolve()) if self.local else base.rstrip("/")

    # -- paths ----------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def uri(self, *parts: str) -> str:
        """What goes into the warehouse: a plain path locally, a full URL elsewhere."""
        p = self.path(*parts)
        return p if self.local else self.fs.unstrip_protocol(p)

    def run_dir(self, run_id: str) -> str:
        return self.path(run_id)

    def batch_dir(self, run_id: str, batch_id: str) -> str:
        return self.path(run_id, batch_id)

    # -- atomic writes ----------------------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to a temp name unique to this writer, then move it into place."""
        parent = path.rsplit("/", 1)[0]
        tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.fs.makedirs(parent, exist_ok=True)
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            if self.local:
                os.replace(tmp, path)
            else:
                self.fs.mv(tmp, path)
        except OSError as exc:
            self._discard(tmp)
            raise StorageError(os_error(exc, path, "cannot write")) from None

    def _discard(self, tmp: str) -> None:
        try:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
        except OSError:
            pass

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())

    def write_table(self, path: str, table: pa.Table) -> None:
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.write_bytes(path, sink.getvalue())

    # -- reads ----------------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise ArtifactError(f"{path}: not found") from None
        except OSError as exc:
            raise ArtifactError(os_error(exc, path)) from None

    def read_json(self, path: str) -> Any:
        try:
            return json.loads(self.read_bytes(path))
        except json.JSONDecodeError as exc:
            raise ArtifactError(
                f"{path}: malformed JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
            ) from None
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{path}: not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None

    def read_manifest(self, path: str, required: tuple[str, ...] = MANIFEST_KEYS) -> dict[str, Any]:
        """A batch manifest, refused (naming the file and the keys) when it lacks what a loader reads."""
        manifest = self.read_json(path)
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{path}: a manifest must be a JSON object")
        missing = [k for k in required if k not in manifest]
        if missing:
            raise ArtifactError(f"{path}: manifest lacks key(s) {', '.join(missing)}")
        return manifest

    def read_table(self, path: str, columns: tuple[str, ...] | None = None) -> pa.Table:
        """A parquet file, whole or only the ``columns`` it has (read without loading the others)."""
        if columns is None:
            data = self.read_bytes(path)
        try:
            if columns is None:
                return pq.read_table(pa.BufferReader(data))
            with self.fs.open(path, "rb") as fh:
                f = pq.ParquetFile(fh)
                return f.read(columns=[c for c in columns if c in f.schema_arrow.names])
        except FileNotFoundError:
            raise ArtifactError(f"{path}: not found") from None
        except (pa.ArrowException, OSError) as exc:
            reason = str(exc).replace("'<Buffer>'", "the file").replace("<Buffer>", "the file")
            raise ArtifactError(f"{path}: unreadable parquet ({reason.splitlines()[0]})") from None


class ImageMemo:
    """The arrays of images this process just wrote as PNG, keyed by generation id.

    When writing and scoring run in one process (``pipelines.runner``), the scorer takes the array from
    here instead of decoding the PNG that was just encoded. PNG is lossless and :func:`decode_png` returns
    RGB uint8, so only RGB uint8 arrays are kept: what comes out is exactly what decoding the file would
    give. An entry answers only for the file it was written to (a reused image elsewhere with the same
    id is read from its own file); a miss (never kept, evicted) falls back to the file. Bounded by bytes,
    least recently used out; entries are read-only copies; safe to share between threads.
    """

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self._items: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, generation_id: str, uri: str, image: np.ndarray) -> None:
        """Keep ``image``, just written as PNG to ``uri``."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            return  # decode_png would convert it: let the scorer read the file
        kept = np.array(image, copy=True, order="C")
        kept.flags.writeable = False
        with self._lock:
            old = self._items.pop(generation_id, None)
            self.nbytes += kept.nbytes - (old[1].nbytes if old is not None else 0)
            self._items[generation_id] = (uri, kept)
            while self.nbytes > self.max_bytes and self._items:
                self.nbytes -= self._items.popitem(last=False)[1][1].nbytes

    def get(self, generation_id: str, uri: str) -> np.ndarray | None:
        """The array written to ``uri`` for this generation, or None."""
        with self._lock:
            entry = self._items.get(generation_id)
            if entry is None or entry[0] != uri:
                return None
            self._items.move_to_end(generation_id)
            self.hits += 1
            return entry[1]

    def __len__(self) -> int:
        return len(self._items)


def read_uri_bytes(uri: str) -> bytes:
    try:
        with fsspec.open(uri, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ArtifactError(f"{uri}: not found") from None
    except OSError as exc:
        raise ArtifactError(os_error(exc, uri)) from None


def stored_image_ok(uri: str, expected_sha256: str | None) -> bool:
    """Whether the image at ``uri`` exists and its bytes hash to ``expected_sha256`` (a reuse check)."""
    if not expected_sha256:
        return False
    try:
        return sha256(read_uri_bytes(uri)) == expected_sha256
    except ArtifactError:
        return False


def reused_image(uri: str, expected_sha256: str | None) -> np.ndarray:
    """Decode a reused image, refusing (naming the file) one that changed since it was planned."""
    data = read_uri_bytes(uri)
    if expected_sha256 and sha256(data) != expected_sha256:
        raise ArtifactError(f"{uri}: stored image changed since it was planned (sha256 mismatch); re-plan")
    try:
        return decode_png(data)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ArtifactError(f"{uri}: not a readable image ({type(exc).__name__})") from None


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def thumbnail_bytes(image: np.ndarray, px: int = THUMB_PX) -> bytes:
    im = Image.fromarray(image)
    im.thumbnail((px, px))
    buf = io.BytesIO()
    im.save(buf, format="WEBP", quality=80)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
