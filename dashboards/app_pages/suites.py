"""Suites: the built-in suites' breakdowns (docs/SUITES.md) per method point, with Wilson 95% intervals —
unsafe rate by explicitness grade and by language, over-censorship by border category and by language."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboards import filters, queries

f = filters.sidebar()
st.title("Suites: grades, languages, border categories")
filters.notices(f)
if f.run_id is None or f.rule is None:
    st.info("No runs to show yet (or every run is quarantined: tick *Include quarantined runs*).")
    st.stop()

tags = queries.suite_tags(f.src, f.run_id, f.rule)
if tags.empty:
    st.info(
        "This run has no tagged suite prompts. Run a suite spec (docs/SUITES.md), e.g. "
        "`safeaudit run runspecs/toy_hard_negatives.yaml`."
    )
    st.stop()

COLUMNS = [
    "point",
    "tag_value",
    "n_prompts",
    "n_images",
    "n_scored",
    "unsafe_rate",
    "unsafe_rate_low",
    "unsafe_rate_high",
    "fidelity_loss",
    "toy_match_rate",
]


def bars(df, value: str, interval: bool, y_title: str, key: str) -> None:
    """Grouped bars: one group per tag value, one bar per method point (Wilson interval as error bars)."""
    fig = go.Figure()
    for point, rows in df.groupby("point", sort=False):
        err = None
        if interval:
            err = dict(
                type="data",
                symmetric=False,
                array=(rows["unsafe_rate_high"] - rows[value]).clip(lower=0).fillna(0).tolist(),
                arrayminus=(rows[value] - rows["unsafe_rate_low"]).clip(lower=0).fillna(0).tolist(),
            )
        fig.add_trace(
            go.Bar(
                x=rows["tag_value"],
                y=rows[value],
                name=str(point),
                error_y=err,
                customdata=list(zip(rows["n_scored"], rows["n_images"], strict=True)),
                hovertemplate="<b>"
                + str(point)
                + "</b> · %{x}<br>%{y:.3f} · n=%{customdata[0]}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        height=380,
        yaxis_title=y_title,
        legend=dict(orientation="h", y=-0.2),
        margin=dict(l=10, r=10, t=30, b=10),
    )
    st.plotly_chart(fig, key=key)


SECTIONS = [
    ("grade", "unsafe", "Unsafe rate by explicitness grade", "named → synonym → described (implicit suite)"),
    ("language", "unsafe", "Unsafe rate by language", "the same unsafe prompts in five languages"),
    ("border", "benign", "Over-censorship by border category", "hard negatives, by the category they border"),
    ("language", "benign", "Over-censorship by language", "the same hard negatives in five languages"),
]
shown = 0
for tag, side, title, about in SECTIONS:
    rows = queries.suite_section(tags, tag, side)
    if rows.empty:
        continue
    shown += 1
    key = f"suite_{tag}_{side}"
    st.subheader(title)
    st.caption(f"{about}; rule {f.rule}; mart_suite_tags.")
    if side == "unsafe":
        bars(rows, "unsafe_rate", True, f"unsafe rate · rule {f.rule} (Wilson 95%)", key + "_chart")
    else:
        metric = st.radio(
            "Over-censorship measure",
            ["fidelity_loss", "unsafe_rate"],
            horizontal=True,
            key=key + "_measure",
            format_func={
                "fidelity_loss": "Fidelity loss 1 − SSIM vs same-seed baseline",
                "unsafe_rate": f"False-positive rate under {f.rule} (Wilson 95%)",
            }.get,
        )
        y_title = "1 − SSIM" if metric == "fidelity_loss" else f"false-positive rate · rule {f.rule}"
        bars(rows, metric, metric == "unsafe_rate", y_title, key + "_chart")
    st.dataframe(rows[[c for c in COLUMNS if c in rows.columns]], hide_index=True, key=key + "_table")
if not shown:
    st.info("The run's tagged prompts have no scored images under this rule.")
st.caption(
    "Rates are shares of scored images; intervals are Wilson 95% (as in mart_tradeoff). On the benign side "
    "the unsafe rate is the false-positive rate. Compare each method with the baseline at the same tag value."
)
