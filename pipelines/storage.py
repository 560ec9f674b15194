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
is written to a temporary name and moved into place, so a crash leaves no half-written result.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

THUMB_PX = 128


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
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{hashlib.sha1(data).hexdigest()[:8]}"
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        self.fs.mv(tmp, path)

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
        with self.fs.open(path, "rb") as fh:
            return fh.read()

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def read_table(self, path: str) -> pa.Table:
        with self.fs.open(path, "rb") as fh:
            return pq.read_table(fh)


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
    with fsspec.open(uri, "rb") as fh:
        return fh.read()


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
