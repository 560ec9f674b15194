"""Run-to-run comparison for the runs page: the previous run of a spec and a significance test per point.

Works on the rows of ``dashboards.queries.run_points``; the test itself is ``pipelines.metrics``'s pooled
two-proportion z test (a comparison of two runs, which no mart holds).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboards.queries import POINT_KEY
from pipelines.metrics import two_proportion_test

COMPARE_COLUMNS = [
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
]


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
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def _rate_txt(k: Any, n: Any) -> str:
    if n is None or pd.isna(n):
        return "—"
    if not n:
        return "not scored"
    return f"{int(k)}/{int(n)} = {k / n:.3f}"
