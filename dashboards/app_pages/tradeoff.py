"""Trade-off: safety against over-censorship, one curve per method through its levels, baseline at the origin."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboards import axes, filters, queries

f = filters.sidebar(family=True, prompt_set=True, category=True, threshold=True)
st.title("Safety vs over-censorship")
if f.family is not None:
    st.caption(f"Model family `{f.family}` · model `{f.model_id}`")
filters.notices(f)
if f.run_id is None or f.rule is None:
    st.info("No runs to show yet (or every run is quarantined: tick *Include quarantined runs*).")
    st.stop()

left, right = st.columns(2)
y = filters.choose(
    "y", list(axes.SAFETY_AXES), st.radio, "Safety (y)", container=left, format_func=axes.SAFETY_AXES.get
)
x = filters.choose(
    "x",
    list(axes.OVERCENSORSHIP_AXES),
    st.radio,
    "Over-censorship (x)",
    container=right,
    format_func=axes.OVERCENSORSHIP_AXES.get,
)
view = axes.tradeoff_points(
    f.src,
    f.run_id,
    f.rule,
    y=y,
    x=x,
    threshold=f.threshold,
    rule_threshold=f.rule_info.get("threshold"),
    prompt_set=f.prompt_set,
    category=f.category,
    model_id=f.model_id,
)
points, notes = view.points, view.notes


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


baseline = points[points["is_baseline"]]
front = points[points["on_front"].fillna(False).astype(bool)]
m1, m2, m3, m4 = st.columns(4)
if not baseline.empty:
    b = baseline.iloc[0]
    m1.metric(
        "Baseline safety (y)", _fmt(b["y"]), help=f"95% Wilson [{_fmt(b['y_low'])}, {_fmt(b['y_high'])}]"
    )
m2.metric("Method points", len(points) - len(baseline))
m3.metric("On the Pareto front", len(front))
thr = f.threshold if f.threshold is not None else f.rule_info.get("threshold")
m4.metric(
    "Threshold",
    f"{f.rule_info.get('op') or ''} {_fmt(thr, 2)}"
    if thr is not None and not pd.isna(thr)
    else "several clauses",
    help=f"rule {f.rule}: {f.rule_info.get('description') or ''}",
)

fig = go.Figure()
hover = (
    "<b>%{customdata[0]}</b><br>level %{customdata[1]} · knob %{customdata[2]}<br>"
    "y %{y:.3f} [%{customdata[3]}, %{customdata[4]}] · n=%{customdata[5]}<br>"
    "x %{x:.3f} · n=%{customdata[6]}<extra></extra>"
)


def _custom(df):
    return list(
        zip(
            df["method_label"],
            df["level"],
            [("—" if k is None or math.isnan(k) else f"{k:g}") for k in df["knob"].astype(float)],
            [_fmt(v) for v in df["y_low"]],
            [_fmt(v) for v in df["y_high"]],
            df["n_y"].fillna(0).astype(int),
            df["n_x"].fillna(0).astype(int),
            strict=True,
        )
    )


def _errors(df):
    return dict(
        type="data",
        symmetric=False,
        array=(df["y_high"] - df["y"]).clip(lower=0).fillna(0).tolist(),
        arrayminus=(df["y"] - df["y_low"]).clip(lower=0).fillna(0).tolist(),
        thickness=1,
    )


# Levels are told apart by marker shape (legend below the methods) and named in the hover, never by text
# printed beside the point: nearby points of different methods would print their labels on each other.
level_symbols = axes.level_symbols(points.loc[~points["is_baseline"], "level"])
palette = px.colors.qualitative.Set1
for i, (label, curve) in enumerate(points[~points["is_baseline"]].groupby("method_label", sort=False)):
    curve = curve.sort_values(["x", "knob"]) if curve["knob"].isna().all() else curve.sort_values("knob")
    path = pd.concat([baseline, curve])  # every curve starts at the baseline
    fig.add_trace(
        go.Scatter(
            x=path["x"],
            y=path["y"],
            mode="lines+markers",
            name=str(label),
            error_y=_errors(path),
            customdata=_custom(path),
            hovertemplate=hover,
            marker=dict(
                size=10,
                color=palette[i % len(palette)],
                symbol=[
                    "diamond" if b else level_symbols[lv]
                    for b, lv in zip(path["is_baseline"], path["level"], strict=True)
                ],
            ),
            line=dict(color=palette[i % len(palette)]),
        )
    )
if not baseline.empty:
    fig.add_trace(
        go.Scatter(
            x=baseline["x"],
            y=baseline["y"],
            mode="markers",
            name="baseline",
            marker=dict(size=14, symbol="diamond", color="black"),
            error_y=_errors(baseline),
            customdata=_custom(baseline),
            hovertemplate=hover,
        )
    )
if not front.empty:
    f_sorted = front.sort_values(["x", "y"])
    fig.add_trace(
        go.Scatter(
            x=f_sorted["x"],
            y=f_sorted["y"],
            mode="lines+markers",
            name="Pareto front",
            line=dict(dash="dot", color="rgba(120,120,120,0.8)", shape="hv"),
            marker=dict(size=20, symbol="circle-open", color="goldenrod", line=dict(width=2)),
            customdata=_custom(f_sorted),
            hovertemplate=hover,
        )
    )
for lv, symbol in level_symbols.items():  # the shape legend: one grey marker per level
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name=f"level {lv}",
            legendgroup="levels",
            legendgrouptitle_text="levels",
            marker=dict(size=10, symbol=symbol, color="grey"),
            hoverinfo="skip",
        )
    )
y_title, x_title = axes.axis_titles(view.y, view.x, f.rule, f.rule_info, f.threshold)
fig.update_layout(
    xaxis_title=x_title + " →  worse",
    yaxis_title=y_title + " →  less safe",
    height=520,
    legend=dict(orientation="h", y=-0.18),
    margin=dict(l=10, r=10, t=30, b=10),
)
st.plotly_chart(fig, key="tradeoff_chart")
for note in notes:
    st.caption(note)

st.subheader("Method points")
table = points.rename(
    columns={"y": "safety", "y_low": "safety_low", "y_high": "safety_high", "x": "overcensorship"}
)
st.dataframe(
    table[
        [
            "point",
            "level",
            "knob",
            "safety",
            "safety_low",
            "safety_high",
            "n_y",
            "overcensorship",
            "n_x",
            "on_front",
            "seconds_per_image",
            "n_generated",
            *(["acted_rate"] if "acted_rate" in points.columns else []),
        ]
    ],
    hide_index=True,
    key="tradeoff_table",
    column_config={
        "on_front": st.column_config.CheckboxColumn("Pareto front"),
        "n_y": st.column_config.NumberColumn("n (safety)"),
        "n_x": st.column_config.NumberColumn("n (over-censorship)"),
        "seconds_per_image": st.column_config.NumberColumn("s / image", format="%.2f"),
        "acted_rate": st.column_config.NumberColumn(
            "acted", format="%.2f", help="share of the point's images where the method changed anything"
        ),
    },
)
st.subheader("Cost per method point")
cost = queries.efficiency(f.src, f.run_id)
if cost.empty:
    st.caption("No batches recorded for this run.")
else:
    st.dataframe(
        cost[
            [
                "point",
                "unet_rows_per_step",
                "rows_vs_baseline",
                "unet_calls_per_step",
                "peak_mem_mib",
                "peak_mem_device",
                "seconds_per_image",
                "n_batches_measured",
            ]
        ],
        hide_index=True,
        key="efficiency_table",
        column_config={
            "unet_rows_per_step": st.column_config.NumberColumn("UNet rows / step / image", format="%.2f"),
            "rows_vs_baseline": st.column_config.NumberColumn("× baseline rows", format="%.2f"),
            "unet_calls_per_step": st.column_config.NumberColumn("UNet calls / step", format="%.2f"),
            "peak_mem_mib": st.column_config.NumberColumn("peak device MiB", format="%.0f"),
            "seconds_per_image": st.column_config.NumberColumn("s / image", format="%.3f"),
        },
    )
    st.caption(
        "mart_efficiency: UNet rows per denoising step per image (the CFG baseline makes 2), peak "
        "torch.cuda.max_memory_allocated per batch (empty on CPU: no device memory to read), sampling "
        "seconds per generated image."
    )
st.caption(
    "Lower is better on both axes. Intervals are Wilson 95%. The Pareto front is computed on the axes shown "
    "(mart_tradeoff's on_pareto_front for unsafe rate vs fidelity loss). Compare rates only within one rule."
)
