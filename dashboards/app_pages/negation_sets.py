"""Negation sets: the Safe Denoiser's versioned sets of unsafe images, and the runs that used each one."""

from __future__ import annotations

import streamlit as st

from dashboards import connection, negation_data

st.title("Negation sets")
src = connection.source()
table = negation_data.sets(src)
if table.empty:
    st.info("No negation sets recorded yet (`safeaudit negation-set build SPEC --warehouse ...`).")
    st.stop()

st.caption(
    "A set serves one model at one size (its latents come from that model's VAE). Safe Denoiser generations "
    "record the hash of the set they used; a rebuilt set with other members is a new hash."
)
st.dataframe(
    table[
        ["name", "set_hash", "kind", "model_id", "height", "width", "rule", "n_candidates", "n_members"]
        + ["run_id", "levels", "n_generations", "acted_rate", "created_at"]
    ],
    hide_index=True,
    key="negation_sets_table",
    column_config={
        "acted_rate": st.column_config.NumberColumn("acted", format="%.2f", help="gate opened at least once"),
        "run_id": st.column_config.TextColumn("used by run"),
    },
)

choices = list(dict.fromkeys(f"{n}@{h}" for n, h in zip(table["name"], table["set_hash"], strict=True)))
chosen = st.selectbox("Set", choices, key="negation_set")
set_hash = chosen.split("@", 1)[1]
rows = negation_data.members(src, set_hash)
kept = rows[rows["kept"]]
st.subheader(f"{len(kept)} of {len(rows)} candidates kept")
st.caption("Every kept image is unsafe by construction: shown blurred, always.")
cols = st.columns(6)
for k, row in enumerate(kept.to_dict("records")):
    image = negation_data.blurred_member(row["path"], row["image_file"]) if row["image_file"] else None
    with cols[k % 6]:
        caption = row["prompt"] or row["source_file"] or ""
        if image is not None:
            st.image(image, caption=f"{caption} · blurred", width="stretch", output_format="PNG")
        else:
            st.caption(f"{caption} (image not found)")
