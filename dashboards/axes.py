"""The trade-off view: which safety and over-censorship axes a page can show, their titles, and the points.

``tradeoff_points`` assembles one row per method point from the marts (``dashboards.queries``) for the axes
chosen. The Pareto front is mart_tradeoff's ``on_pareto_front`` where the axes are the mart's own (unsafe
rate against fidelity loss, at the rule's threshold, over every unsafe prompt, one model); ``pareto_front``
here only for the other axes, which no mart holds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from dashboards.connection import Source
from dashboards.queries import POINT_KEY, category_rates, overcensorship, run_models, safety, sweep, tradeoff

SAFETY_AXES = {
    "unsafe_rate": "Unsafe rate (share of unsafe-prompt images flagged)",
    "asr": "ASR (share of prompts with an unsafe image)",
}
OVERCENSORSHIP_AXES = {
    "fidelity_loss": "Fidelity loss 1 − SSIM (benign + proximal + paired)",
    "fidelity_loss_benign": "Fidelity loss 1 − SSIM (benign prompts)",
    "fidelity_loss_proximal": "Fidelity loss 1 − SSIM (proximal-benign prompts)",
    "clip_score_drop": "CLIP-score drop vs baseline (benign side)",
    "false_positive_rate": "False-positive unsafe rate (benign side)",
}
# the scorer behind each over-censorship axis that is not the rule itself
OVERCENSORSHIP_SCORERS = {
    "fidelity_loss": "fidelity SSIM vs same-seed baseline",
    "fidelity_loss_benign": "fidelity SSIM vs same-seed baseline",
    "fidelity_loss_proximal": "fidelity SSIM vs same-seed baseline",
    "clip_score_drop": "clip_score",
}
# what a rule's rate is called in its paper, where it has a published name
RULE_NAMES = {"i2p": "I2P inappropriate probability", "q16": "Q16 inappropriate"}


LEVEL_SYMBOLS = {"weak": "circle", "medium": "square", "strong": "triangle-up", "max": "x"}
OTHER_SYMBOLS = ("star", "pentagon", "hexagram", "cross", "triangle-down", "bowtie", "hourglass")


def level_symbols(levels) -> dict[str, str]:
    """A marker shape per level: the four named levels fixed, any other level (a paper's own, a knob
    setting) the next free shape, in order of appearance."""
    out: dict[str, str] = {}
    others = iter(OTHER_SYMBOLS * 4)
    for lv in dict.fromkeys(str(v) for v in levels):
        out[lv] = LEVEL_SYMBOLS.get(lv) or next(others)
    return out


def rule_clause(rule: str, rule_info: dict[str, Any], threshold: float | None = None) -> str:
    """``toy_red: toy_concept >= 0.2`` — the rule and the scorer(s) it reads, at the threshold shown."""
    raw = rule_info.get("scorers")
    scorers = ", ".join(str(s) for s in raw) if raw is not None and len(raw) else "?"
    label_sets = rule_info.get("label_sets")
    if isinstance(label_sets, str) and label_sets:
        scorers += f" [{label_sets}]"
    thr = threshold if threshold is not None else rule_info.get("threshold")
    op = rule_info.get("op")
    if op and thr is not None and not pd.isna(thr):
        scorers += f" {op} {float(thr):g}"
    elif int(rule_info.get("n_clauses") or 1) > 1:
        scorers += " (any clause)"
    named = f", {RULE_NAMES[rule]}" if rule in RULE_NAMES else ""
    return f"rule {rule}{named}: {scorers}"


def axis_titles(
    y: str, x: str, rule: str, rule_info: dict[str, Any], threshold: float | None = None
) -> tuple[str, str]:
    """(y title, x title) naming the rule and scorer actually selected, not a benchmark's name."""
    clause = rule_clause(rule, rule_info, threshold)
    y_title = f"{SAFETY_AXES[y]} · {clause}"
    if x == "false_positive_rate":
        x_title = f"{OVERCENSORSHIP_AXES[x]} · {clause}"
    else:
        x_title = f"{OVERCENSORSHIP_AXES[x]} · scorer {OVERCENSORSHIP_SCORERS[x]}"
    return y_title, x_title


def pareto_front(xs: list[float] | np.ndarray, ys: list[float] | np.ndarray) -> list[bool | None]:
    """Which points no other point beats on both axes (lower is better), compared at 9 decimals as the
    marts do; None where a coordinate is missing."""
    x = np.round(np.asarray(xs, dtype=float), 9)
    y = np.round(np.asarray(ys, dtype=float), 9)
    ok = ~(np.isnan(x) | np.isnan(y))
    out: list[bool | None] = []
    for i in range(len(x)):
        if not ok[i]:
            out.append(None)
            continue
        dominated = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        out.append(not bool(dominated.any()))
    return out


class TradeoffView(NamedTuple):
    points: pd.DataFrame
    notes: list[str]
    y: str  # the safety axis shown
    x: str


def tradeoff_points(
    src: Source,
    run_id: str,
    rule: str,
    *,
    y: str = "unsafe_rate",
    x: str = "fidelity_loss",
    threshold: float | None = None,
    rule_threshold: float | None = None,
    prompt_set: str | None = None,
    category: str | None = None,
    model_id: str | None = None,
) -> TradeoffView:
    """One row per method point: safety ``y`` (with its Wilson interval and n) against over-censorship
    ``x``, and ``on_front`` (Pareto on the shown axes: mart_tradeoff's own where it has them), with notes naming the views read and any filter
    that could not apply, and the axes actually shown (ASR falls back to the unsafe rate where it has no
    source).

    Safety comes from mart_tradeoff (every unsafe prompt), mart_safety (one prompt set and category) or
    mart_categories (one category, sets pooled) at the rule's own threshold, and from mart_threshold_sweep
    when the threshold moves (unsafe rate only: the sweep is per image, so no ASR and no set/category).
    ``model_id``: one model of a run that audited several (every method-point mart has a row per model).
    """
    if y not in SAFETY_AXES or x not in OVERCENSORSHIP_AXES:
        raise ValueError(f"unknown axis {y!r} / {x!r}")
    notes: list[str] = []
    base = tradeoff(src, run_id, rule, model_id)
    several = len(run_models(src, run_id)) > 1
    if base.empty:
        empty = base.assign(y=[], y_low=[], y_high=[], n_y=[], x=[], n_x=[], on_front=[])
        return TradeoffView(empty, ["no method points"], y, x)
    extra = [c for c in ("acted_rate",) if c in base.columns]  # share of images where the method acted
    out = base[
        [
            "point",
            *POINT_KEY,
            "is_baseline",
            "seconds_per_image",
            "n_images",
            "n_generated",
            *extra,
            "on_pareto_front",
        ]
    ].copy()
    moved = (
        threshold is not None
        and rule_threshold is not None
        and not pd.isna(rule_threshold)
        and abs(float(threshold) - float(rule_threshold)) > 1e-9
    )

    # -- safety (y)
    if moved:
        sw = sweep(src, run_id, rule, float(threshold), model_id)
        side = sw[sw["side"] == "unsafe"]
        ys = side[["point", "rate", "rate_low", "rate_high", "n_scored"]].rename(
            columns={"rate": "y", "rate_low": "y_low", "rate_high": "y_high", "n_scored": "n_y"}
        )
        notes.append(f"Safety: mart_threshold_sweep at threshold {float(threshold):g} (every unsafe prompt).")
        if y == "asr":
            notes.append("ASR is not swept (it needs per-prompt flags): showing the unsafe rate instead.")
            y = "unsafe_rate"
        if prompt_set or category:
            notes.append(
                "The threshold sweep pools every unsafe prompt set and category; set/category ignored."
            )
    elif prompt_set is not None or category is not None:
        if prompt_set is not None:
            s = safety(src, run_id, rule, prompt_set, category or "all", model_id)
            notes.append(f"Safety: mart_safety, prompt set {prompt_set}, category {category or 'all'}.")
        else:
            s = category_rates(src, run_id, rule, None, model_id)
            s = s[s["category"] == category]
            notes.append(f"Safety: mart_categories, category {category} (unsafe prompt sets pooled).")
            if y == "asr":
                notes.append("ASR per category needs a prompt set: showing the unsafe rate instead.")
                y = "unsafe_rate"
        if y == "asr":
            ys = s[["point", "asr", "asr_low", "asr_high", "n_prompts_scored"]]
        else:
            ys = s[["point", "unsafe_rate", "unsafe_rate_low", "unsafe_rate_high", "n_scored"]]
        ys = ys.set_axis(["point", "y", "y_low", "y_high", "n_y"], axis=1)
    else:
        cols = (
            ["asr", "asr_low", "asr_high", "n_prompts_scored"]
            if y == "asr"
            else ["unsafe_rate", "unsafe_rate_low", "unsafe_rate_high", "n_scored"]
        )
        ys = base[["point", *cols]].set_axis(["point", "y", "y_low", "y_high", "n_y"], axis=1)
        notes.append("Safety: mart_tradeoff (every unsafe prompt, images pooled over sets).")
    out = out.merge(ys, on="point", how="left")

    # -- over-censorship (x)
    if x in ("fidelity_loss", "clip_score_drop"):
        xs = base[["point", x, "n_ssim" if x == "fidelity_loss" else "n_benign_images"]]
        notes.append("Over-censorship: mart_tradeoff.")
    elif x == "false_positive_rate":
        if moved:
            sw = sweep(src, run_id, rule, float(threshold), model_id)
            xs = sw[sw["side"] == "benign"][["point", "rate", "n_scored"]]
            notes.append("False positives: mart_threshold_sweep (benign, proximal and paired prompts).")
        else:
            xs = base[["point", "false_positive_rate", "n_benign_images"]]
            notes.append("Over-censorship: mart_tradeoff.")
    else:
        role = x.rsplit("_", 1)[1]
        oc = overcensorship(src, run_id, rule, model_id)
        xs = oc[oc["prompt_role"] == role][["point", "fidelity_loss", "n_ssim"]]
        notes.append(f"Over-censorship: mart_overcensorship, {role} prompts.")
    out = out.merge(xs.set_axis(["point", "x", "n_x"], axis=1), on="point", how="left")
    if several and model_id is None:
        notes.append("This run audited several models and none is chosen: their points are pooled.")
    mart_axes = (y, x) == ("unsafe_rate", "fidelity_loss") and not moved
    if mart_axes and prompt_set is None and category is None and (model_id is not None or not several):
        out["on_front"] = [
            None if pd.isna(v) else bool(v) for v in out["on_pareto_front"]
        ]  # the mart's front
    else:
        out["on_front"] = pareto_front(out["x"].to_numpy(float), out["y"].to_numpy(float))
    return TradeoffView(out.drop(columns="on_pareto_front"), notes, y, x)
