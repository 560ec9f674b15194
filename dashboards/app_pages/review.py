"""Image review: one prompt and seed under the baseline and every method point, side by side.

Images any rule flags as unsafe, and images no rule has scored (unknown safety is treated as unsafe: fail
closed), arrive blurred (blurred on the server: the original bytes are not sent) until a reviewer clicks
Reveal on that image. Labels go through ``pipelines.labels`` (a file per label
beside the warehouse), never through the read-only warehouse connection.
"""

from __future__ import annotations

import streamlit as st

from dashboards import auth, filters, image_serving, queries, reviewer_labels
from pipelines.labels import LABELS, LabelError

COLUMNS = 4

f = filters.sidebar(prompt_set=True, category=True)
st.title("Image review")
filters.notices(f)
if f.run_id is None:
    st.info("No runs to show yet (or every run is quarantined: tick *Include quarantined runs*).")
    st.stop()

_header = auth.reviewer_header()
if _header:  # behind the authenticating front: the name it vouches for, never a typed one
    st.session_state["reviewer"] = auth.authenticated_reviewer(st.context.headers, _header)
    if st.session_state["reviewer"]:
        st.sidebar.markdown(f"Reviewer: **{filters.md_escape(st.session_state['reviewer'])}** (signed in)")
    else:
        st.sidebar.warning("Not signed in through the dashboard's front: labels cannot be saved.")
else:
    st.sidebar.text_input(
        "Reviewer", key="reviewer", max_chars=64, placeholder="your name (stored with labels)"
    )

prompts = queries.review_prompts(f.src, f.run_id)
if f.prompt_set is not None:
    prompts = prompts[[f.prompt_set in s for s in prompts["prompt_sets"]]]
if f.category is not None:
    prompts = prompts[[f.category in c for c in prompts["categories"]]]
if prompts.empty:
    st.info("No prompt of this run matches the filters.")
    st.stop()
texts = {
    r["prompt_id"]: f"{r['prompt_text'][:90]} — {', '.join(r['prompt_sets'])}"
    for r in prompts.to_dict("records")
}
top1, top2, top3 = st.columns([3, 1, 1])
prompt_id = filters.choose(
    "prompt", list(texts), st.selectbox, "Prompt", container=top1, format_func=texts.get
)
seed = filters.choose(
    "seed", queries.review_seeds(f.src, f.run_id, prompt_id), st.selectbox, "Seed", container=top2
)
full = filters.choose(
    "full",
    [False, True],
    st.toggle,
    "Full-size images",
    container=top3,
    default=False,
    help="Read the PNG from the artifact store (only files under the configured artifacts root).",
)

row = prompts[prompts["prompt_id"] == prompt_id].iloc[0]
st.markdown(
    f"**Prompt:** {filters.md_escape(row['prompt_text'])}  \n"
    f"sets {filters.md_escape(', '.join(row['prompt_sets']))} · roles {filters.md_escape(', '.join(row['prompt_roles']))}"
    f" · categories {filters.md_escape(', '.join(row['categories']) or '—')}"
)

message = st.session_state.pop("_label_msg", None)
if message:
    getattr(st, message[0])(message[1])

revealed: set[str] = st.session_state.setdefault("revealed", set())
label_by_gen = reviewer_labels.latest_labels(f.src, reviewer_labels.pending_version(f.src)).set_index(
    "generation_id"
)


def _reveal(gid: str) -> None:
    st.session_state.setdefault("revealed", set()).add(gid)


def _hide(gid: str) -> None:
    st.session_state.setdefault("revealed", set()).discard(gid)


def _save(gid: str) -> None:
    choice = st.session_state.get(f"label_{gid}")
    if auth.reviewer_header() and not st.session_state.get("reviewer"):
        st.session_state["_label_msg"] = ("error", "Label not saved: no authenticated reviewer.")
        return
    if choice is None:
        st.session_state["_label_msg"] = ("warning", "Pick a label before saving.")
        return
    try:
        reviewer_labels.save_label(
            f.src, gid, choice, st.session_state.get("reviewer"), st.session_state.get(f"note_{gid}")
        )
    except LabelError as exc:
        st.session_state["_label_msg"] = ("error", f"Label not saved: {exc}")
        return
    except OSError as exc:  # e.g. the labels folder sits on a read-only mount
        st.session_state["_label_msg"] = (
            "error",
            f"Label not saved: the labels folder is not writable ({exc.strerror}).",
        )
        return
    st.session_state["_label_msg"] = ("success", f"Saved label {choice} for {filters.md_escape(gid)}.")


images = queries.review_images(f.src, f.run_id, prompt_id, int(seed))
n_flagged = sum(img["flagged"] for img in images)
n_unscored = sum(img["unscored"] for img in images)
st.caption(
    f"{len(images)} images · {n_flagged} flagged by at least one rule · {n_unscored} scored by no rule"
    f" (both blurred until revealed) · seed {seed}"
)
for start in range(0, len(images), COLUMNS):
    cols = st.columns(COLUMNS)
    for col, img in zip(cols, images[start : start + COLUMNS], strict=False):
        gid = img["generation_id"]
        is_revealed = gid in revealed
        blur = img["blur"] and not is_revealed
        served = image_serving.served_image(f.src, gid, blur=blur, full=bool(full))
        with col.container(border=True, key=f"card_{gid}"):
            st.markdown(f"**{filters.md_escape(img['point'])}**")
            if served.data is not None:
                caption = f"{img['point']} · {served.origin}" + (" · blurred" if served.blurred else "")
                st.image(served.data, caption=caption, width="stretch", output_format="PNG")
            else:
                st.caption("No image stored for this generation.")
            if img["flagged"]:
                n = len(img["flagged_by"])
                st.badge(f"flagged by {n} rule{'s' if n > 1 else ''}", icon=":material/warning:", color="red")
                st.caption(filters.md_escape(", ".join(img["flagged_by"])))
            elif img["unscored"]:
                st.badge("unscored — treated as unsafe", icon=":material/help:", color="orange")
            else:
                st.badge("not flagged", color="green")
            if img["blur"]:
                if is_revealed:
                    st.button("Hide", key=f"hide_{gid}", on_click=_hide, args=(gid,))
                else:
                    st.button("Reveal", key=f"reveal_{gid}", on_click=_reveal, args=(gid,), type="primary")
            lines = [
                f"{filters.md_escape(k)}: `{v:.3f}`"
                if isinstance(v, float)
                else f"{filters.md_escape(k)}: `{v}`"
                for k, v in img["scores"].items()
            ]
            st.caption("  \n".join(lines) or "no scores")
            if gid in label_by_gen.index:
                cur = label_by_gen.loc[gid]
                who = filters.md_escape(cur["reviewer"]) if isinstance(cur["reviewer"], str) else "—"
                st.markdown(f"Reviewer label: **{cur['label']}** ({who}; {cur['stored']})")
            st.radio("Label", LABELS, key=f"label_{gid}", index=None, horizontal=True)
            st.text_input(
                "Note", key=f"note_{gid}", max_chars=1000, label_visibility="collapsed", placeholder="note"
            )
            st.button("Save label", key=f"save_{gid}", on_click=_save, args=(gid,))
            st.caption("id " + filters.md_escape(gid))
