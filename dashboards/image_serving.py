"""Image serving for the review pages: which files may be served, and blurring on the server.

Image files are served only from below the configured artifacts root (resolved, symlinks followed,
checked); otherwise the stored thumbnail. A flagged or unscored image is blurred here, so the original
never reaches the browser.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlparse

import streamlit as st

from dashboards.connection import Source, frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_IMAGE_BYTES = 32 * 1024 * 1024


def artifact_path(uri: str | None, artifacts_root: str | Path) -> Path | None:
    """The local file an ``image_uri`` names, only if it is an image file inside the artifacts root.

    Accepts a plain path or a ``file://`` URL; anything else (other schemes, NUL bytes, paths that leave
    the root after resolving ``..`` and symlinks, non-image suffixes, oversized files) gives None.
    """
    if not uri or not isinstance(uri, str) or "\x00" in uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return None
        raw = unquote(parsed.path)
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        raw = uri
    else:
        return None
    try:
        root = Path(artifacts_root).resolve(strict=True)
        path = Path(raw).expanduser()
        path = (path if path.is_absolute() else Path.cwd() / path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    return contained_image(root, path, MAX_IMAGE_BYTES)


def contained_image(root: Path, path: Path, max_bytes: int) -> Path | None:
    """``path`` (resolved) if it is an image file inside ``root`` (resolved) of at most ``max_bytes``."""
    if not path.is_relative_to(root) or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    return path if path.stat().st_size <= max_bytes else None


class ServedImage(NamedTuple):
    data: bytes | None  # what the browser receives (None: no image stored)
    origin: str  # 'artifact' | 'thumbnail' | 'none'
    blurred: bool


@st.cache_data(show_spinner=False, max_entries=256)
def served_image(src: Source, generation_id: str, *, blur: bool, full: bool = False) -> ServedImage:
    """The bytes to send for one image: the full file (when ``full`` and it is servable) else the stored
    thumbnail; blurred here, on the server, when ``blur`` so the original never reaches the browser."""
    row = frame(src, "dashboard/image", [generation_id])
    if row.empty:
        return ServedImage(None, "none", False)
    data, origin = None, "none"
    if full:
        path = artifact_path(row["image_uri"].iloc[0], src.artifacts)
        if path is not None:
            data, origin = path.read_bytes(), "artifact"
    if data is None:
        thumb = row["thumbnail"].iloc[0]
        if thumb is not None and not (isinstance(thumb, float) and math.isnan(thumb)):
            data, origin = bytes(thumb), "thumbnail"
    if data is None:
        return ServedImage(None, "none", False)
    if blur:
        data = blur_bytes(data)
    return ServedImage(data, origin, blur)


def blur_bytes(data: bytes) -> bytes:
    """A heavily blurred PNG of an image: pixelate to ~1/12 then Gaussian blur, so neither edges nor fine
    detail survive (a plain small-radius blur can leave a thumbnail recognisable)."""
    from PIL import Image, ImageFilter

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        w, h = im.size
        small = im.resize((max(1, w // 12), max(1, h // 12)), Image.Resampling.BOX)
        out = small.resize((w, h), Image.Resampling.BILINEAR).filter(
            ImageFilter.GaussianBlur(max(2.0, max(w, h) / 24))
        )
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()
