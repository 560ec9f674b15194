"""The dashboard's reads: one cached function per named query (``sql/queries/dashboard``, and the
report's own files in ``sql/queries/report`` where a page shows a report table), and the row shaping the
pages share (how a method point is named, one model of a run).

Every function takes the ``Source`` (its cache key holds the snapshot's identity, so a new snapshot is read
on the next rerun) and binds every value as a parameter. Rows come in the order the query gives them
(``point_order``: baseline first, methods by name, levels weak to max, knob ascending). Intervals and the
Pareto front come from the marts; pages lay out what these return and hold no SQL.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from dashboards.connection import Source, cursor, frame
from pipelines.metrics import wilson_interval
from pipelines.report import TABLE_QUERIES, choose_rule
from pipelines.warehouse import WarehouseError

POINT_KEY = ["method", "method_label", "level", "knob"]
QUARANTINED = "quarantined"
GRADE_ORDER = ("named", "synonym", "described")


def point_name(row: dict[str, Any] | pd.Series) -> str:
    """'baseline', or 'SLD · weak (0.5)': how every page names a method point."""
    if bool(row.get("is_baseline")) or row.get("method") == "baseline":
        return "baseline"
    knob = row.get("knob")
    knob_txt = "" if knob is None or (isinstance(knob, float) and math.isnan(knob)) else f" ({knob:g})"
    return f"{row.get('method_label') or row.get('method')} · {row.get('level')}{knob_txt}"


def of_model(df: pd.DataFrame, model_id: str | None) -> pd.DataFrame:
    """The rows of one model of the run (the method-point marts have one row per model); all without one."""
    return df if model_id is None else df[df["model_id"] == model_id].reset_index(drop=True)


def with_point(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a first column ``point``: each row's point_name."""
    if not df.empty:
        df.insert(0, "point", [point_name(r) for r in df.to_dict("records")])
    else:
        df.insert(0, "point", pd.Series(dtype=str))
    return df


# -- runs, rules, prompt sets ------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def runs(src: Source) -> pd.DataFrame:
    """mart_runs, oldest first, with is_quarantined."""
    df = frame(src, "dashboard/runs")
    df["is_quarantined"] = df["run_status"].eq(QUARANTINED)
    return df


@st.cache_data(show_spinner=False, max_entries=32)
def rules(src: Source) -> pd.DataFrame:
    """One row per current unsafe rule: its clauses summarised; op / threshold for one-clause rules."""
    return frame(src, "dashboard/rules")


@st.cache_data(show_spinner=False, max_entries=32)
def default_rule(src: Source, run_id: str) -> str | None:
    """The report's choice for a run (the rule deciding the most unsafe-prompt images)."""
    cur = cursor(src)
    try:
        return choose_rule(cur, run_id)
    except WarehouseError:
        return None
    finally:
        cur.close()


@st.cache_data(show_spinner=False, max_entries=32)
def prompt_sets(src: Source, run_id: str) -> pd.DataFrame:
    """The run's prompt sets: role, prompt count and categories."""
    return frame(src, "dashboard/prompt_sets", [run_id])


@st.cache_data(show_spinner=False, max_entries=32)
def categories(src: Source, run_id: str, prompt_set: str | None = None) -> list[str]:
    """Categories of the run's unsafe-role prompts (of one prompt set when given)."""
    return frame(src, "dashboard/categories", [run_id, prompt_set])["category"].tolist()


@st.cache_data(show_spinner=False, max_entries=64)
def thresholds(src: Source, run_id: str, rule: str) -> list[float]:
    """Thresholds the warehouse sweeps for a one-clause rule in a run (mart_threshold_sweep); [] otherwise."""
    return [float(t) for t in frame(src, "dashboard/thresholds", [run_id, rule])["threshold"]]


# -- trade-off ---------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def run_models(src: Source, run_id: str) -> pd.DataFrame:
    """The (family, model_id) pairs a run audited, from mart_tradeoff (a run may hold several models)."""
    return frame(src, "dashboard/run_models", [run_id])


@st.cache_data(show_spinner=False, max_entries=64)
def tradeoff(src: Source, run_id: str, rule: str, model_id: str | None = None) -> pd.DataFrame:
    """mart_tradeoff for one run and rule (and one of its models), baseline first: the report's query."""
    return with_point(of_model(frame(src, TABLE_QUERIES["tradeoff"], [run_id, rule]), model_id))


@st.cache_data(show_spinner=False, max_entries=64)
def safety(
    src: Source, run_id: str, rule: str, prompt_set: str, category: str = "all", model_id: str | None = None
) -> pd.DataFrame:
    """mart_safety for one prompt set and category ('all' pools the set) (and one model of the run)."""
    df = frame(src, TABLE_QUERIES["safety"], [run_id, rule, prompt_set, category, None])
    return with_point(of_model(df, model_id))


@st.cache_data(show_spinner=False, max_entries=64)
def overcensorship(src: Source, run_id: str, rule: str, model_id: str | None = None) -> pd.DataFrame:
    """mart_overcensorship: one row per method point (of the model) and benign-side role."""
    return with_point(of_model(frame(src, TABLE_QUERIES["overcensorship"], [run_id, rule]), model_id))


@st.cache_data(show_spinner=False, max_entries=64)
def sweep(src: Source, run_id: str, rule: str, threshold: float, model_id: str | None = None) -> pd.DataFrame:
    """mart_threshold_sweep at one threshold, pooled to two rows per point: unsafe prompts and benign side.

    side 'unsafe' = prompt_role unsafe; side 'benign' = benign + proximal + paired (images of one role are
    distinct, so counts add). The float threshold is matched within 1e-9 of the stored grid value. The
    Wilson interval is of the pooled counts, which no mart holds (hence ``pipelines.metrics`` here).
    """
    df = of_model(frame(src, "dashboard/sweep", [run_id, rule, float(threshold)]), model_id)
    df["rate"] = df["n_unsafe"] / df["n_scored"].where(df["n_scored"] > 0)
    ci = [
        wilson_interval(k, n) if n else (math.nan, math.nan)
        for k, n in zip(df["n_unsafe"], df["n_scored"], strict=True)
    ]
    df["rate_low"] = [c[0] for c in ci]
    df["rate_high"] = [c[1] for c in ci]
    return with_point(df)


# -- categories --------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def category_rates(
    src: Source, run_id: str, rule: str, prompt_set: str | None = None, model_id: str | None = None
) -> pd.DataFrame:
    """Unsafe rate per method point and category: mart_categories (unsafe sets pooled), or mart_safety for
    one prompt set (``model_id``: one model of a run that audited several). Category 'all' first."""
    if prompt_set is None:
        return with_point(of_model(frame(src, TABLE_QUERIES["categories"], [run_id, rule]), model_id))
    df = frame(src, TABLE_QUERIES["safety"], [run_id, rule, prompt_set, None, "unsafe"])
    return with_point(of_model(df, model_id))


# -- efficiency --------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def efficiency(src: Source, run_id: str) -> pd.DataFrame:
    """mart_efficiency for one run: UNet rows per step, peak device memory (MiB), seconds per image."""
    df = frame(src, "dashboard/efficiency", [run_id])
    df["peak_mem_mib"] = df["peak_mem_bytes"].astype(float) / 2**20
    return with_point(df)


# -- suites ------------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def suite_tags(src: Source, run_id: str, rule: str) -> pd.DataFrame:
    """mart_suite_tags for one run and rule: one row per method point, tag value and prompt role."""
    return with_point(frame(src, "dashboard/suite_tags", [run_id, rule]))


def suite_section(df: pd.DataFrame, tag: str, role_side: str) -> pd.DataFrame:
    """The rows of one tag on one side ('unsafe' = unsafe prompts, 'benign' = every other role), in
    method-point order, grades from named to described, other values alphabetically."""
    side = df["prompt_role"].eq("unsafe") if role_side == "unsafe" else df["prompt_role"].ne("unsafe")
    out = df[df["tag"].eq(tag) & side].copy()
    rank = {g: i for i, g in enumerate(GRADE_ORDER)} if tag == "grade" else {}
    out["_v"] = [rank.get(v, len(rank)) for v in out["tag_value"]]
    points = list(dict.fromkeys(df["point"]))
    out["_p"] = [points.index(p) for p in out["point"]]
    return out.sort_values(["_p", "_v", "tag_value"]).drop(columns=["_v", "_p"]).reset_index(drop=True)


# -- run history -------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def run_points(src: Source, rule: str) -> pd.DataFrame:
    """Every run's method points under one rule (mart_tradeoff), for history and run-to-run tests."""
    return with_point(frame(src, "dashboard/run_points", [rule]))


# -- label quality -----------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def agreement(src: Source, run_id: str) -> pd.DataFrame:
    """Per pair of rules in a run: images both decided, how many they disagree on (mart_scorer_agreement)."""
    df = frame(src, "dashboard/agreement", [run_id])
    df["disagree_rate"] = df["n_disagree"] / df["n_images"].where(df["n_images"] > 0)
    return df


@st.cache_data(show_spinner=False, max_entries=32)
def disagreements(src: Source, run_id: str, rule: str, limit: int = 200) -> pd.DataFrame:
    """Images of a run where ``rule`` and another rule disagree, independent scorers first."""
    return with_point(frame(src, "dashboard/disagreements", [run_id, rule, int(limit)]))


# -- image review ------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def review_prompts(src: Source, run_id: str) -> pd.DataFrame:
    """The run's prompts that have images: one row per prompt id, with its sets, roles and categories."""
    return frame(src, "dashboard/review_prompts", [run_id])


@st.cache_data(show_spinner=False, max_entries=64)
def review_seeds(src: Source, run_id: str, prompt_id: str) -> list[int]:
    return [int(s) for s in frame(src, "dashboard/review_seeds", [run_id, prompt_id])["seed"]]


_REVIEW_SCORES = {  # (scorer, metric) -> column shown under each image
    ("nudenet_classifier", "unsafe_prob"): "classifier P(unsafe)",
    ("q16", "label"): "Q16 inappropriate",
    ("opennsfw", "nsfw_prob"): "OpenNSFW P(nsfw)",
    ("toy_concept", "red_fraction"): "toy red fraction",
    ("fidelity", "ssim"): "SSIM vs baseline",
    ("clip_score", "clip_score"): "CLIP score",
}


@st.cache_data(show_spinner=False, max_entries=64)
def review_images(src: Source, run_id: str, prompt_id: str, seed: int) -> list[dict[str, Any]]:
    """Every method point's image of one (prompt, seed) in a run, baseline first, with its flags and scores.

    ``flagged_by``: the rules under which the image is unsafe; ``flagged`` = any. ``unscored``: no rule
    has a verdict on it (no safety scorer in the run, or the scorer failed): unknown safety is treated as
    unsafe. ``blur`` = flagged or unscored: what the page blurs by default (fail closed).
    """
    params = [run_id, prompt_id, int(seed)]
    gens = frame(src, "dashboard/review_generations", params)
    flags = frame(src, "dashboard/review_flags", params)
    scores = frame(src, "dashboard/review_scores", params)
    top = frame(src, "dashboard/review_top_detection", params)
    out = []
    for g in gens.to_dict("records"):
        gid = g["generation_id"]
        f = flags[flags["generation_id"] == gid]
        s = scores[scores["generation_id"] == gid]
        shown = {}
        for (scorer, metric), name in _REVIEW_SCORES.items():
            v = s[(s["scorer"] == scorer) & (s["metric"] == metric)]["value"]
            if len(v):
                shown[name] = float(v.iloc[0])
        t = top[top["generation_id"] == gid]
        if len(t) and not pd.isna(t["top_score"].iloc[0]):
            shown["NudeNet top detection"] = f"{t['top_class'].iloc[0]} {float(t['top_score'].iloc[0]):.2f}"
        flagged_by = f[f["is_unsafe"].fillna(False).astype(bool)]["rule"].tolist()
        n_scored = int(f["is_unsafe"].notna().sum())
        out.append(
            g
            | {
                "point": point_name(g),
                "flagged_by": flagged_by,
                "flagged": bool(flagged_by),
                "n_rules_scored": n_scored,
                "unscored": n_scored == 0,
                "blur": bool(flagged_by) or n_scored == 0,
                "scores": shown,
            }
        )
    return out
