"""Data for the dashboard's negation-sets page: the sets (mart_negation_sets) and their member images.

Every kept member of a set was flagged unsafe (by the set's rule) or supplied as unsafe (an import), so its
image is only ever sent blurred, blurred here on the server; there is no reveal on this page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboards.connection import Source, frame
from dashboards.image_serving import blur_bytes, contained_image

MAX_MEMBER_BYTES = 8 * 1024 * 1024


@st.cache_data(show_spinner=False, max_entries=16)
def sets(src: Source) -> pd.DataFrame:
    """mart_negation_sets: one row per (set, run that used it), newest set first."""
    return frame(src, "dashboard/negation_sets")


@st.cache_data(show_spinner=False, max_entries=16)
def members(src: Source, set_hash: str) -> pd.DataFrame:
    """The members of one set, by member number, with the set's folder (``path``)."""
    return frame(src, "dashboard/negation_members", [set_hash])


@st.cache_data(show_spinner=False, max_entries=256)
def blurred_member(folder: str, image_file: str) -> bytes | None:
    """A member image, blurred; None unless it is an image file inside its set's folder."""
    root = Path(folder).resolve()
    try:
        path = (root / image_file).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    path = contained_image(root, path, MAX_MEMBER_BYTES)
    return None if path is None else blur_bytes(path.read_bytes())
