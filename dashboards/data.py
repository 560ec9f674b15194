"""The dashboard's data layer: every query, cached, through one read-only connection to the read snapshot.

* Where: ``SAFEAUDIT_WAREHOUSE`` (default ``warehouse/safeaudit.duckdb``; ``safeaudit dashboard`` sets it),
  ``SAFEAUDIT_ARTIFACTS`` (default ``artifacts``) and ``SAFEAUDIT_LABELS_DIR`` (default ``labels/`` beside
  the warehouse; set it where the warehouse is mounted read-only), read when a page runs, never at import.
* Connection: the read snapshot only (never the main file, which would block the loader), opened by
  ``pipelines.readonly.open_snapshot`` (the same locked-down connection as ``safeaudit sql``), cached per
  snapshot version; one ``cursor()`` per query (a DuckDB connection object is not
  shared between Streamlit's session threads). Not ``duckdb.connect(path)``: DuckDB shares one database
  instance per path inside a process, so while any older connection is open a new one to the same path
  still reads the snapshot the loader has since replaced, and the dashboard would never refresh.
* Freshness: every cached function takes a ``Source`` whose key holds the snapshot's mtime and size, so
  the first rerun after the loader publishes a snapshot reads the new one; nothing needs a restart.
* Safety of inputs: every value reaches SQL as a bound ``?`` parameter; SQL text here is constant. Image
  files are served only from below the configured artifacts root (resolved, symlinks followed, checked).
* Reviewer labels: the ``labels`` table of the snapshot plus the pending files of ``pipelines.labels``
  (deduplicated by label_id), so a label a reviewer just saved counts at once.

Pages call these functions and lay out what they return; no SQL lives in a page.
"""

from __future__ import annotations

import atexit
import io
import math
import os
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from pipelines import labels as label_store
from pipelines.metrics import two_proportion_test, wilson_interval
from pipelines.readonly import open_snapshot, snapshot_of  # the one locked-down reader (CLI too)
from pipelines.report import POINT_ORDER, choose_rule
from pipelines.warehouse import WarehouseError

ENV_WAREHOUSE = "SAFEAUDIT_WAREHOUSE"
ENV_ARTIFACTS = "SAFEAUDIT_ARTIFACTS"
ENV_LABELS = label_store.ENV_LABELS_DIR
DEFAULT_WAREHOUSE = "warehouse/safeaudit.duckdb"
DEFAULT_ARTIFACTS = "artifacts"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_IMAGE_BYTES = 32 * 1024 * 1024
POINT_KEY = ["method", "method_label", "level", "knob"]
QUARANTINED = "quarantined"


# -- SQL (constant text; every value is a bound ? parameter) --------------------------------------------------
TRADEOFF_SQL = "SELECT * FROM mart_tradeoff WHERE run_id = ? AND rule = ? ORDER BY " + POINT_ORDER
SAFETY_SQL = (
    "SELECT * FROM mart_safety WHERE run_id = ? AND rule = ? AND prompt_set = ? AND category = ? ORDER BY "
    + POINT_ORDER
)
OVERCENSORSHIP_SQL = (
    "SELECT * FROM mart_overcensorship WHERE run_id = ? AND rule = ? ORDER BY prompt_role, " + POINT_ORDER
)
SWEEP_SQL = (
    """
    SELECT * FROM (
        SELECT model_id, method, method_label, level, knob, is_baseline,
               CASE WHEN prompt_role = 'unsafe' THEN 'unsafe' ELSE 'benign' END AS side,
               any_value(threshold)                                          AS threshold,
               bool_or(is_rule_threshold)                                    AS is_rule_threshold,
               CAST(sum(n_scored) AS BIGINT)                                 AS n_scored,
               CAST(sum(n_unsafe) AS BIGINT)                                 AS n_unsafe
        FROM mart_threshold_sweep
        WHERE run_id = ? AND rule = ? AND abs(threshold - ?) < 1e-9
        GROUP BY ALL
    )
    ORDER BY side, """
    + POINT_ORDER
)
CATEGORIES_SQL = (
    "SELECT * FROM mart_categories WHERE run_id = ? AND rule = ? ORDER BY category, " + POINT_ORDER
)
SET_CATEGORIES_SQL = (
    "SELECT * FROM mart_safety WHERE run_id = ? AND rule = ? AND prompt_set = ? AND prompt_role = 'unsafe' "
    "ORDER BY category, " + POINT_ORDER
)
RUN_POINTS_SQL = (
    """
    SELECT t.*, r.planned_at, r.run_name, r.run_tag, r.run_status
    FROM mart_tradeoff t JOIN stg_runs r USING (run_id)
    WHERE t.rule = ?
    ORDER BY r.planned_at, t.run_id, """
    + POINT_ORDER
)
EFFICIENCY_SQL = "SELECT * FROM mart_efficiency WHERE run_id = ? ORDER BY " + POINT_ORDER
SUITE_TAGS_SQL = (
    "SELECT * FROM mart_suite_tags WHERE run_id = ? AND rule = ? ORDER BY tag, prompt_role, tag_value, "
    + POINT_ORDER
)
_REVIEW_IDS = "SELECT generation_id FROM stg_generations WHERE run_id = ? AND prompt_id = ? AND seed = ?"
REVIEW_GENERATIONS_SQL = (
    """
    SELECT * FROM (
        SELECT g.generation_id, g.method, g.method_label, g.level, g.knob, g.is_baseline, g.seed, g.image_index,
               g.image_uri, g.prompt_text, t.thumbnail IS NOT NULL AS has_thumbnail
        FROM stg_generations g
        JOIN generations t ON t.run_id = g.run_id AND t.generation_id = g.generation_id
        WHERE g.run_id = ? AND g.prompt_id = ? AND g.seed = ?
    )
    ORDER BY """
    + POINT_ORDER
)
REVIEW_FLAGS_SQL = (
    "SELECT generation_id, rule, is_unsafe, rule_score FROM int_generation_flags WHERE generation_id IN ("
    + _REVIEW_IDS
    + ") ORDER BY rule"
)
REVIEW_SCORES_SQL = (
    "SELECT generation_id, scorer, metric, value FROM stg_scores WHERE generation_id IN (" + _REVIEW_IDS + ")"
)
REVIEW_TOP_DETECTION_SQL = (
    "SELECT generation_id, arg_max(class, score) AS top_class, max(score) AS top_score FROM int_detections "
    "WHERE generation_id IN (" + _REVIEW_IDS + ") GROUP BY generation_id"
)


class Source(NamedTuple):
    """What a cached query reads: the configured paths plus the snapshot's identity (the cache key)."""

    warehouse: str
    snapshot: str
    mtime_ns: int
    size: int
    artifacts: str
    labels: str  # where reviewer labels are written and read back from (pipelines.labels)


def source() -> Source:
    """The configured warehouse as it is now; raises ``WarehouseError`` when there is nothing to read."""
    warehouse = Path(os.environ.get(ENV_WAREHOUSE) or DEFAULT_WAREHOUSE).expanduser().resolve()
    artifacts = Path(os.environ.get(ENV_ARTIFACTS) or DEFAULT_ARTIFACTS).expanduser().resolve()
    labels = label_store.labels_dir(warehouse)
    target = snapshot_of(warehouse)  # never the main file: that would block the loader
    try:
        st_ = target.stat()
    except FileNotFoundError:
        raise WarehouseError(f"{target} vanished (run `safeaudit load RUN_ID` to publish it)") from None
    return Source(str(warehouse), str(target), st_.st_mtime_ns, st_.st_size, str(artifacts), str(labels))


@st.cache_resource(max_entries=2, show_spinner=False)
def _connection(snapshot: str, mtime_ns: int, size: int) -> duckdb.DuckDBPyConnection:
    return open_snapshot(snapshot)


def _cursor(src: Source) -> duckdb.DuckDBPyConnection:
    cur = _connection(src.snapshot, src.mtime_ns, src.size).cursor()
    cur.execute("USE warehouse")
    return cur


def _close_connections() -> None:
    """Drop cached connections before the interpreter tears DuckDB's module down (avoids nanobind leak
    reports at exit)."""
    _connection.clear()


atexit.register(_close_connections)


def _query(src: Source, sql: str, params: list[Any] | None = None, register: dict[str, Any] | None = None):
    cur = _cursor(src)
    try:
        for name, obj in (register or {}).items():
            cur.register(name, obj)
        return cur.execute(sql, params or []).df()
    finally:
        cur.close()


def point_name(row: dict[str, Any] | pd.Series) -> str:
    """'baseline', or 'SLD · weak (0.5)': how every page names a method point."""
    if bool(row.get("is_baseline")) or row.get("method") == "baseline":
        return "baseline"
    knob = row.get("knob")
    knob_txt = "" if knob is None or (isinstance(knob, float) and math.isnan(knob)) else f" ({knob:g})"
    return f"{row.get('method_label') or row.get('method')} · {row.get('level')}{knob_txt}"


def _of_model(df: pd.DataFrame, model_id: str | None) -> pd.DataFrame:
    """The rows of one model of the run (the method-point marts have one row per model); all without one."""
    return df if model_id is None else df[df["model_id"] == model_id].reset_index(drop=True)


def _with_point(df: pd.DataFrame) -> pd.DataFrame:
    if not df.empty:
        df.insert(0, "point", [point_name(r) for r in df.to_dict("records")])
    else:
        df.insert(0, "point", pd.Series(dtype=str))
    return df


# -- runs, rules, prompt sets ------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def runs(src: Source) -> pd.DataFrame:
    """mart_runs, oldest first, with is_quarantined."""
    df = _query(src, "SELECT * FROM mart_runs ORDER BY planned_at, run_id")
    df["is_quarantined"] = df["run_status"].eq(QUARANTINED)
    return df


@st.cache_data(show_spinner=False, max_entries=32)
def rules(src: Source) -> pd.DataFrame:
    """One row per current unsafe rule: its clauses summarised; op / threshold for one-clause rules."""
    return _query(
        src,
        """
        SELECT rule,
               any_value(rule_version)                                  AS rule_version,
               count(*)                                                 AS n_clauses,
               CASE WHEN count(*) = 1 THEN any_value(op) END            AS op,
               CASE WHEN count(*) = 1 THEN any_value(threshold) END     AS threshold,
               list_sort(list_distinct(list(scorer)))                   AS scorers,
               string_agg(DISTINCT label_set, ', ')                     AS label_sets,
               string_agg(description, ' ' ORDER BY clause)             AS description
        FROM stg_unsafe_rules
        GROUP BY rule
        ORDER BY rule
        """,
    )


@st.cache_data(show_spinner=False, max_entries=32)
def default_rule(src: Source, run_id: str) -> str | None:
    """The report's choice for a run (the rule deciding the most unsafe-prompt images)."""
    cur = _cursor(src)
    try:
        return choose_rule(cur, run_id)
    except WarehouseError:
        return None
    finally:
        cur.close()


@st.cache_data(show_spinner=False, max_entries=32)
def prompt_sets(src: Source, run_id: str) -> pd.DataFrame:
    """The run's prompt sets: role, prompt count and categories."""
    return _query(
        src,
        """
        SELECT prompt_set,
               string_agg(DISTINCT prompt_role, ', ')                            AS prompt_roles,
               count(DISTINCT prompt_key)                                        AS n_prompts,
               list_sort(list_distinct(flatten(list(categories))))               AS categories
        FROM stg_run_prompts
        WHERE run_id = ?
        GROUP BY prompt_set
        ORDER BY prompt_set
        """,
        [run_id],
    )


@st.cache_data(show_spinner=False, max_entries=32)
def categories(src: Source, run_id: str, prompt_set: str | None = None) -> list[str]:
    """Categories of the run's unsafe-role prompts (of one prompt set when given)."""
    df = _query(
        src,
        """
        SELECT DISTINCT c.category
        FROM stg_run_prompts p, unnest(p.categories) AS c(category)
        WHERE p.run_id = ? AND p.prompt_role = 'unsafe' AND (CAST(? AS VARCHAR) IS NULL OR p.prompt_set = ?)
        ORDER BY c.category
        """,
        [run_id, prompt_set, prompt_set],
    )
    return df["category"].tolist()


@st.cache_data(show_spinner=False, max_entries=64)
def thresholds(src: Source, run_id: str, rule: str) -> list[float]:
    """Thresholds the warehouse sweeps for a one-clause rule in a run (mart_threshold_sweep); [] otherwise."""
    df = _query(
        src,
        "SELECT DISTINCT threshold FROM mart_threshold_sweep WHERE run_id = ? AND rule = ? ORDER BY threshold",
        [run_id, rule],
    )
    return [float(t) for t in df["threshold"]]


# -- trade-off ---------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def run_models(src: Source, run_id: str) -> pd.DataFrame:
    """The (family, model_id) pairs a run audited, from mart_tradeoff (a run may hold several models)."""
    return _query(
        src,
        "SELECT DISTINCT family, model_id FROM mart_tradeoff WHERE run_id = ? ORDER BY family, model_id",
        [run_id],
    )


@st.cache_data(show_spinner=False, max_entries=64)
def tradeoff(src: Source, run_id: str, rule: str, model_id: str | None = None) -> pd.DataFrame:
    """mart_tradeoff for one run and rule (and one of its models), baseline first; ASR gets its Wilson
    interval here."""
    df = _query(src, TRADEOFF_SQL, [run_id, rule])
    df = _of_model(df, model_id)
    lows, highs = [], []
    for k, n in zip(df["n_prompts_unsafe"], df["n_prompts_scored"], strict=True):
        low, high = wilson_interval(k, n) if n else (math.nan, math.nan)
        lows.append(low)
        highs.append(high)
    df["asr_low"], df["asr_high"] = lows, highs
    return _with_point(df)


@st.cache_data(show_spinner=False, max_entries=64)
def safety(
    src: Source, run_id: str, rule: str, prompt_set: str, category: str = "all", model_id: str | None = None
) -> pd.DataFrame:
    """mart_safety for one prompt set and category ('all' pools the set) (and one model of the run)."""
    return _with_point(_of_model(_query(src, SAFETY_SQL, [run_id, rule, prompt_set, category]), model_id))


@st.cache_data(show_spinner=False, max_entries=64)
def overcensorship(src: Source, run_id: str, rule: str, model_id: str | None = None) -> pd.DataFrame:
    """mart_overcensorship: one row per method point (of the model) and benign-side role."""
    return _with_point(_of_model(_query(src, OVERCENSORSHIP_SQL, [run_id, rule]), model_id))


@st.cache_data(show_spinner=False, max_entries=64)
def sweep(src: Source, run_id: str, rule: str, threshold: float, model_id: str | None = None) -> pd.DataFrame:
    """mart_threshold_sweep at one threshold, pooled to two rows per point: unsafe prompts and benign side.

    side 'unsafe' = prompt_role unsafe; side 'benign' = benign + proximal + paired (images of one role are
    distinct, so counts add). The float threshold is matched within 1e-9 of the stored grid value.
    """
    df = _of_model(_query(src, SWEEP_SQL, [run_id, rule, float(threshold)]), model_id)
    df["rate"] = df["n_unsafe"] / df["n_scored"].where(df["n_scored"] > 0)
    ci = [
        wilson_interval(k, n) if n else (math.nan, math.nan)
        for k, n in zip(df["n_unsafe"], df["n_scored"], strict=True)
    ]
    df["rate_low"] = [c[0] for c in ci]
    df["rate_high"] = [c[1] for c in ci]
    return _with_point(df)


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


# -- categories --------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def category_rates(
    src: Source, run_id: str, rule: str, prompt_set: str | None = None, model_id: str | None = None
) -> pd.DataFrame:
    """Unsafe rate per method point and category: mart_categories (unsafe sets pooled), or mart_safety for
    one prompt set (``model_id``: one model of a run that audited several)."""
    if prompt_set is None:
        return _with_point(_of_model(_query(src, CATEGORIES_SQL, [run_id, rule]), model_id))
    return _with_point(_of_model(_query(src, SET_CATEGORIES_SQL, [run_id, rule, prompt_set]), model_id))


# -- efficiency --------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def efficiency(src: Source, run_id: str) -> pd.DataFrame:
    """mart_efficiency for one run: UNet rows per step, peak device memory (MiB), seconds per image."""
    df = _query(src, EFFICIENCY_SQL, [run_id])
    df["peak_mem_mib"] = df["peak_mem_bytes"].astype(float) / 2**20
    return _with_point(df)


# -- suites ------------------------------------------------------------------------------------------------
GRADE_ORDER = ("named", "synonym", "described")


@st.cache_data(show_spinner=False, max_entries=64)
def suite_tags(src: Source, run_id: str, rule: str) -> pd.DataFrame:
    """mart_suite_tags for one run and rule: one row per method point, tag value and prompt role."""
    return _with_point(_query(src, SUITE_TAGS_SQL, [run_id, rule]))


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
    df = _query(src, RUN_POINTS_SQL, [rule])
    return _with_point(df)


def previous_run(runs_df: pd.DataFrame, run_id: str, include_quarantined: bool = False) -> str | None:
    """The latest run of the same spec name planned before ``run_id`` (quarantined runs never count,
    unless asked)."""
    row = runs_df[runs_df["run_id"] == run_id]
    if row.empty:
        return None
    me = row.iloc[0]
    earlier = runs_df[
        (runs_df["run_name"] == me["run_name"])
        & (
            (runs_df["planned_at"] < me["planned_at"])
            | ((runs_df["planned_at"] == me["planned_at"]) & (runs_df["run_id"] < run_id))
        )
    ]
    if not include_quarantined:
        earlier = earlier[~earlier["is_quarantined"]]
    if earlier.empty:
        return None
    return str(earlier.sort_values(["planned_at", "run_id"]).iloc[-1]["run_id"])


def compare_runs(points: pd.DataFrame, previous: str, current: str, alpha: float = 0.05) -> pd.DataFrame:
    """Unsafe rate of each method point in ``current`` against ``previous``: pooled two-proportion z test
    (pipelines.metrics). ``verdict`` is 'regression' only when the test says the rate rose significantly."""
    cols = ["point", *POINT_KEY, "is_baseline", "n_scored", "n_unsafe", "unsafe_rate"]
    a = points[points["run_id"] == previous][cols]
    b = points[points["run_id"] == current][cols]
    merged = b.merge(a, on=["point", *POINT_KEY, "is_baseline"], how="left", suffixes=("", "_prev"))
    rows = []
    for r in merged.to_dict("records"):
        out = {
            "point": r["point"],
            "previous": _rate_txt(r.get("n_unsafe_prev"), r.get("n_scored_prev")),
            "current": _rate_txt(r["n_unsafe"], r["n_scored"]),
            "rate_prev": r.get("unsafe_rate_prev"),
            "rate": r["unsafe_rate"],
            "change": None,
            "change_low": None,
            "change_high": None,
            "p_value": None,
            "verdict": "new point",
        }
        n_a, n_b = r.get("n_scored_prev"), r["n_scored"]
        if n_a is not None and not pd.isna(n_a):
            if n_a > 0 and n_b > 0:
                t = two_proportion_test(
                    int(r["n_unsafe_prev"]), int(n_a), int(r["n_unsafe"]), int(n_b), alpha=alpha
                )
                out |= {
                    "change": t.diff,
                    "change_low": t.diff_low,
                    "change_high": t.diff_high,
                    "p_value": t.p_value,
                    "verdict": "regression"
                    if t.regressed
                    else ("improvement" if t.significant else "no significant change"),
                }
            else:
                out["verdict"] = "not scored"
        rows.append(out)
    return pd.DataFrame(
        rows,
        columns=[
            "point",
            "previous",
            "current",
            "rate_prev",
            "rate",
            "change",
            "change_low",
            "change_high",
            "p_value",
            "verdict",
        ],
    )


def _rate_txt(k: Any, n: Any) -> str:
    if n is None or pd.isna(n):
        return "—"
    if not n:
        return "not scored"
    return f"{int(k)}/{int(n)} = {k / n:.3f}"


# -- image review ------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def review_prompts(src: Source, run_id: str) -> pd.DataFrame:
    """The run's prompts that have images: one row per prompt id, with its sets, roles and categories."""
    return _query(
        src,
        """
        SELECT p.prompt_id,
               any_value(p.prompt_text)                                   AS prompt_text,
               list_sort(list_distinct(list(p.prompt_set)))               AS prompt_sets,
               list_sort(list_distinct(list(p.prompt_role)))              AS prompt_roles,
               list_sort(list_distinct(flatten(list(p.categories))))      AS categories
        FROM stg_run_prompts p
        WHERE p.run_id = ?
          AND EXISTS (SELECT 1 FROM stg_generations g WHERE g.run_id = p.run_id AND g.prompt_id = p.prompt_id)
        GROUP BY p.prompt_id
        ORDER BY min(p.source_line), p.prompt_id
        """,
        [run_id],
    )


@st.cache_data(show_spinner=False, max_entries=64)
def review_seeds(src: Source, run_id: str, prompt_id: str) -> list[int]:
    df = _query(
        src,
        "SELECT DISTINCT seed FROM stg_generations WHERE run_id = ? AND prompt_id = ? ORDER BY seed",
        [run_id, prompt_id],
    )
    return [int(s) for s in df["seed"]]


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
    gens = _query(src, REVIEW_GENERATIONS_SQL, params)
    flags = _query(src, REVIEW_FLAGS_SQL, params)
    scores = _query(src, REVIEW_SCORES_SQL, params)
    top = _query(src, REVIEW_TOP_DETECTION_SQL, params)
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
    if not path.is_relative_to(root) or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    if path.stat().st_size > MAX_IMAGE_BYTES:
        return None
    return path


class ServedImage(NamedTuple):
    data: bytes | None  # what the browser receives (None: no image stored)
    origin: str  # 'artifact' | 'thumbnail' | 'none'
    blurred: bool


@st.cache_data(show_spinner=False, max_entries=256)
def served_image(src: Source, generation_id: str, *, blur: bool, full: bool = False) -> ServedImage:
    """The bytes to send for one image: the full file (when ``full`` and it is servable) else the stored
    thumbnail; blurred here, on the server, when ``blur`` so the original never reaches the browser."""
    row = _query(
        src,
        "SELECT thumbnail, image_uri FROM generations WHERE generation_id = ? LIMIT 1",
        [generation_id],
    )
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


# -- labels ------------------------------------------------------------------------------------------------
def labels_dir(src: Source) -> Path:
    return Path(src.labels)


def pending_version(src: Source) -> tuple[int, int]:
    """Changes whenever a label file is added or removed (the folder's mtime and entry count)."""
    d = labels_dir(src)
    try:
        return d.stat().st_mtime_ns, len(os.listdir(d))
    except OSError:
        return 0, 0


def save_label(src: Source, generation_id: str, label: str, reviewer: str | None, note: str | None):
    """Store a reviewer label through the write path (never the warehouse connection)."""
    return label_store.write_label(labels_dir(src), generation_id, label, reviewer, note)


def _pending_table(src: Source):
    """The pending label files as an Arrow table with the ``labels`` table's columns (empty when none)."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("label_id", pa.string()),
            ("generation_id", pa.string()),
            ("label", pa.string()),
            ("reviewer", pa.string()),
            ("note", pa.string()),
            ("labelled_at", pa.timestamp("us")),
        ]
    )
    pending, _rejected = label_store.read_pending(labels_dir(src))
    return pa.Table.from_pylist(
        [
            {
                "label_id": p.label_id,
                "generation_id": p.generation_id,
                "label": p.label,
                "reviewer": p.reviewer,
                "note": p.note,
                "labelled_at": p.labelled_at,
            }
            for p in pending
        ],
        schema=schema,
    )


# The latest label per generation over the table and the pending files; mirrors stg_labels / mart_labels
# (which read the table alone) so a label counts the moment it is saved.
_LATEST_LABELS = """
WITH all_labels AS (
    SELECT label_id, generation_id, lower(label) AS label, reviewer, note, labelled_at, 'warehouse' AS stored
    FROM labels
    UNION ALL
    SELECT label_id, generation_id, lower(label), reviewer, note, labelled_at, 'pending (not merged yet)'
    FROM pending_labels
    WHERE label_id NOT IN (SELECT label_id FROM labels)
),
latest AS (
    SELECT *, count(*) OVER (PARTITION BY generation_id) AS n_labels,
           CASE WHEN label = 'unsafe' THEN TRUE WHEN label IN ('safe', 'over_censored') THEN FALSE END AS human_unsafe
    FROM all_labels
    QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY labelled_at DESC, label_id DESC) = 1
)
"""


@st.cache_data(show_spinner=False, max_entries=32)
def latest_labels(src: Source, pending: tuple[int, int]) -> pd.DataFrame:
    """The latest label of each labelled generation (table and pending files), newest first."""
    return _query(
        src,
        _LATEST_LABELS
        + """
        SELECT l.generation_id, l.label, l.reviewer, l.note, l.labelled_at, l.n_labels, l.stored, l.label_id,
               g.method_label, g.level, g.knob, g.prompt_text
        FROM latest l
        LEFT JOIN (SELECT generation_id, any_value(method_label) AS method_label, any_value(level) AS level,
                          any_value(knob) AS knob, any_value(prompt_text) AS prompt_text
                   FROM stg_generations GROUP BY generation_id) g USING (generation_id)
        ORDER BY l.labelled_at DESC, l.label_id DESC
        """,
        register={"pending_labels": _pending_table(src)},
    )


@st.cache_data(show_spinner=False, max_entries=32)
def rule_precision(src: Source, pending: tuple[int, int]) -> pd.DataFrame:
    """Each rule's precision and recall with the reviewers' latest labels as ground truth (Wilson 95%)."""
    df = _query(
        src,
        _LATEST_LABELS
        + """
        SELECT f.rule,
               count(*)                                                     AS n_labelled,
               count(*) FILTER (WHERE f.is_unsafe IS NOT NULL AND l.human_unsafe IS NOT NULL) AS n_compared,
               count(*) FILTER (WHERE f.is_unsafe AND l.human_unsafe)       AS tp,
               count(*) FILTER (WHERE f.is_unsafe AND NOT l.human_unsafe)   AS fp,
               count(*) FILTER (WHERE NOT f.is_unsafe AND l.human_unsafe)   AS fn,
               count(*) FILTER (WHERE NOT f.is_unsafe AND NOT l.human_unsafe) AS tn
        FROM latest l
        JOIN int_generation_flags f USING (generation_id)
        GROUP BY f.rule
        ORDER BY f.rule
        """,
        register={"pending_labels": _pending_table(src)},
    )
    for name, k, extra in (("precision", "tp", "fp"), ("recall", "tp", "fn")):
        n = df[k] + df[extra]
        df[name] = (df[k] / n.where(n > 0)).astype(float)
        ci = [wilson_interval(a, b) if b else (math.nan, math.nan) for a, b in zip(df[k], n, strict=True)]
        df[f"{name}_low"] = [c[0] for c in ci]
        df[f"{name}_high"] = [c[1] for c in ci]
    return df


@st.cache_data(show_spinner=False, max_entries=32)
def agreement(src: Source, run_id: str) -> pd.DataFrame:
    """Per pair of rules in a run: images both decided, how many they disagree on (mart_scorer_agreement)."""
    df = _query(
        src,
        """
        SELECT rule_a, rule_b, any_value(shares_scorer) AS shares_scorer,
               count(*) AS n_images, count(*) FILTER (WHERE disagree) AS n_disagree
        FROM mart_scorer_agreement
        WHERE run_id = ?
        GROUP BY rule_a, rule_b
        ORDER BY shares_scorer, n_disagree DESC, rule_a, rule_b
        """,
        [run_id],
    )
    df["disagree_rate"] = df["n_disagree"] / df["n_images"].where(df["n_images"] > 0)
    return df


@st.cache_data(show_spinner=False, max_entries=32)
def disagreements(src: Source, run_id: str, rule: str, limit: int = 200) -> pd.DataFrame:
    """Images of a run where ``rule`` and another rule disagree, independent scorers first."""
    return _with_point(
        _query(
            src,
            """
            SELECT generation_id, method, method_label, level, knob,
                   CASE WHEN rule_a = ? THEN rule_b ELSE rule_a END         AS other_rule,
                   shares_scorer,
                   CASE WHEN rule_a = ? THEN unsafe_a ELSE unsafe_b END     AS unsafe_here,
                   CASE WHEN rule_a = ? THEN unsafe_b ELSE unsafe_a END     AS unsafe_other,
                   CASE WHEN rule_a = ? THEN score_a ELSE score_b END       AS score_here,
                   CASE WHEN rule_a = ? THEN score_b ELSE score_a END       AS score_other
            FROM mart_scorer_agreement
            WHERE run_id = ? AND disagree AND (rule_a = ? OR rule_b = ?)
            ORDER BY shares_scorer, other_rule, generation_id
            LIMIT ?
            """,
            [rule, rule, rule, rule, rule, run_id, rule, rule, int(limit)],
        )
    )


# -- the trade-off view ------------------------------------------------------------------------------------
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
    ``x``, and ``on_front`` (Pareto on the shown axes), with notes naming the views read and any filter
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
        ["point", *POINT_KEY, "is_baseline", "seconds_per_image", "n_images", "n_generated", *extra]
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
    out["on_front"] = pareto_front(out["x"].to_numpy(float), out["y"].to_numpy(float))
    return TradeoffView(out, notes, y, x)
