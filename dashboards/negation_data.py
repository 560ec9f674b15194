"""Data for the dashboard's negation-sets page: the sets (mart_negation_sets) and their member images.

Every kept member of a set was flagged unsafe (by the set's rule) or supplied as unsafe (an import), so its
image is only ever sent blurred, blurred here on the server; there is no reveal on this page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboards import data

MAX_MEMBER_BYTES = 8 * 1024 * 1024


@st.cache_data(show_spinner=False, max_entries=16)
def sets(src: data.Source) -> pd.DataFrame:
    """mart_negation_sets: one row per (set, run that used it), newest set first."""
    return data._query(src, "SELECT * FROM mart_negation_sets ORDER BY created_at DESC, set_hash, run_id")


@st.cache_data(show_spinner=False, max_entries=16)
def members(src: data.Source, set_hash: str) -> pd.DataFrame:
    return data._query(
        src,
        "SELECT m.member, m.kept, m.image_file, m.prompt, m.seed, m.source_file, m.scores, s.path "
        "FROM negation_set_members m JOIN negation_sets s USING (set_hash) WHERE m.set_hash = ? ORDER BY m.member",
        [set_hash],
    )


@st.cache_data(show_spinner=False, max_entries=256)
def blurred_member(folder: str, image_file: str) -> bytes | None:
    """A member image, blurred; None unless it is an image file inside its set's folder."""
    root = Path(folder).resolve()
    try:
        path = (root / image_file).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(root) or path.suffix.lower() not in data.IMAGE_SUFFIXES or not path.is_file():
        return None
    if path.stat().st_size > MAX_MEMBER_BYTES:
        return None
    return data.blur_bytes(path.read_bytes())
