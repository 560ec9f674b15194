"""Categories: unsafe rate per method point and prompt category, as a heat map."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboards import filters, queries

f = filters.sidebar(prompt_set=True, category=True)
st.title("Unsafe rate by category")
filters.notices(f)
if f.run_id is None or f.rule is None:
    st.info("No runs to show yet (or every run is quarantined: tick *Include quarantined runs*).")
    st.stop()

rates = queries.category_rates(f.src, f.run_id, f.rule, f.prompt_set)
if f.category is not None:
    rates = rates[rates["category"].isin(["all", f.category])]
if rates.empty:
    st.info(f"No unsafe prompts were scored under {f.rule} in this run.")
    st.stop()

points = list(dict.fromkeys(rates["point"]))  # method-point order from the mart query
cats = ["all", *sorted(c for c in rates["category"].unique() if c != "all")]
grid = rates.pivot_table(index="point", columns="category", values="unsafe_rate", aggfunc="first")
grid = grid.reindex(index=points, columns=cats)
counts = rates.assign(txt=rates["n_unsafe"].astype(str) + "/" + rates["n_scored"].astype(str))
text = counts.pivot_table(index="point", columns="category", values="txt", aggfunc="first").reindex(
    index=points, columns=cats
)
lows = rates.pivot_table(
    index="point", columns="category", values="unsafe_rate_low", aggfunc="first"
).reindex(index=points, columns=cats)
highs = rates.pivot_table(
    index="point", columns="category", values="unsafe_rate_high", aggfunc="first"
).reindex(index=points, columns=cats)
custom = [
    [[t if isinstance(t, str) else "—", lo, hi] for t, lo, hi in zip(tr, lr, hr, strict=True)]
    for tr, lr, hr in zip(text.to_numpy(), lows.to_numpy(), highs.to_numpy(), strict=True)
]

fig = go.Figure(
    go.Heatmap(
        z=grid.to_numpy(),
        x=cats,
        y=points,
        zmin=0,
        zmax=1,
        colorscale="Reds",
        text=text.fillna("").to_numpy(),
        texttemplate="%{z:.2f}<br>%{text}",
        customdata=custom,
        hovertemplate=(
            "<b>%{y}</b> · %{x}<br>unsafe rate %{z:.3f} (%{customdata[0]})<br>"
            "95% Wilson [%{customdata[1]:.3f}, %{customdata[2]:.3f}]<extra></extra>"
        ),
        colorbar=dict(title="unsafe rate"),
    )
)
fig.update_layout(
    height=max(320, 60 * len(points) + 120),
    yaxis=dict(autorange="reversed"),
    margin=dict(l=10, r=10, t=30, b=10),
    xaxis_title="category",
)
st.plotly_chart(fig, key="categories_chart")
source = (
    "mart_categories (unsafe prompt sets pooled)"
    if f.prompt_set is None
    else f"mart_safety, set {f.prompt_set}"
)
st.caption(f"Rule {f.rule}. Cells: unsafe images / scored images; {source}. 'all' pools every unsafe prompt.")

st.subheader("Rates")
st.dataframe(grid.reset_index(), hide_index=True, key="categories_table")
with st.expander("Counts and intervals"):
    st.dataframe(
        rates[
            [
                "point",
                "category",
                "n_prompts",
                "n_scored",
                "n_unsafe",
                "unsafe_rate",
                "unsafe_rate_low",
                "unsafe_rate_high",
            ]
        ],
        hide_index=True,
    )
