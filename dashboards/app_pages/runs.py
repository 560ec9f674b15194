"""Runs: nightly history, validation status, cost, and each method point against the previous run."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboards import filters, queries, run_compare

f = filters.sidebar()
st.title("Nightly runs")
filters.notices(f)

history = f.runs if f.concept is None else f.runs[f.runs["concept_pack"] == f.concept]
if history.empty:
    st.info("No runs in the warehouse yet.")
    st.stop()

quarantined = history[history["is_quarantined"]]
if not quarantined.empty:
    st.badge(f"{len(quarantined)} quarantined", icon=":material/block:", color="red")
    st.caption(
        "Quarantined runs failed validation. They are listed here as such and left out of every other page's "
        "run picker and of run-to-run comparisons (tick *Include quarantined runs* to inspect one)."
    )

st.subheader("History")
table = history.sort_values(["planned_at", "run_id"], ascending=False).assign(
    status=lambda d: [
        ("QUARANTINED" if q else s) for q, s in zip(d["is_quarantined"], d["run_status"], strict=True)
    ],
    validation=lambda d: [
        (f"{int(n - k)}/{int(n)} passed" if n else "not validated")
        for n, k in zip(d["n_expectations"], d["n_expectations_failed"], strict=True)
    ],
)
st.dataframe(
    table[
        [
            "run_id",
            "run_tag",
            "status",
            "validation",
            "planned_at",
            "concept_pack",
            "n_generations",
            "n_reused",
            "reused_fraction",
            "n_method_points",
            "sampling_s",
            "compute_s",
            "gpu_s",
            "cpu_s",
        ]
    ],
    hide_index=True,
    key="runs_table",
    column_config={
        "reused_fraction": st.column_config.NumberColumn("reused", format="percent"),
        "sampling_s": st.column_config.NumberColumn("sampling s", format="%.1f"),
        "compute_s": st.column_config.NumberColumn("compute s", format="%.1f"),
    },
)

if f.run_id is None or f.rule is None:
    st.info("Pick a run in the sidebar to compare it with the previous one.")
    st.stop()

points = queries.run_points(f.src, f.rule)
shown_runs = set(
    history["run_id"] if f.include_quarantined else history[~history["is_quarantined"]]["run_id"]
)
trend = points[points["run_id"].isin(shown_runs)]
if not trend.empty:
    fig = go.Figure()
    for name, g in trend.groupby("point", sort=False):
        g = g.sort_values("planned_at")
        q = g["run_status"].eq(queries.QUARANTINED)
        fig.add_trace(
            go.Scatter(
                x=g["run_tag"].fillna(g["run_id"]),
                y=g["unsafe_rate"],
                mode="lines+markers",
                name=str(name),
                marker=dict(symbol=["x" if v else "circle" for v in q], size=[14 if v else 8 for v in q]),
                customdata=list(zip(g["run_id"], g["n_unsafe"], g["n_scored"], g["run_status"], strict=True)),
                hovertemplate=(
                    f"<b>{name}</b><br>%{{customdata[0]}} (%{{customdata[3]}})<br>"
                    "unsafe rate %{y:.3f} = %{customdata[1]}/%{customdata[2]}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        height=380,
        yaxis_title=f"unsafe rate ({f.rule})",
        xaxis_title="run",
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=-0.25),
    )
    st.plotly_chart(fig, key="runs_chart")

st.subheader(f"{f.run_id} against the previous run")
run = f.run or {}
c1, c2, c3, c4 = st.columns(4)
c1.metric("Status", "QUARANTINED" if f.run_is_quarantined else str(run.get("run_status")))
c2.metric("Images (reused)", f"{int(run.get('n_generations', 0))} ({int(run.get('n_reused', 0))})")
c3.metric(
    "Compute seconds",
    f"{float(run.get('compute_s') or 0):.1f}",
    help=f"GPU {float(run.get('gpu_s') or 0):.1f} s · CPU {float(run.get('cpu_s') or 0):.1f} s",
)
c4.metric("Failed expectations", int(run.get("n_expectations_failed", 0)))

previous = run_compare.previous_run(f.runs, f.run_id, include_quarantined=False)
if f.run_is_quarantined:
    st.warning("A quarantined run is not compared: its numbers are not results.")
elif previous is None:
    st.info("No earlier run of the same spec to compare with.")
else:
    cmp = run_compare.compare_runs(points, previous, f.run_id)
    regressions = cmp[cmp["verdict"] == "regression"]
    st.metric("Significant safety regressions", len(regressions))
    if regressions.empty:
        st.success(f"No significant safety regression against {previous} (two-proportion z test, α = 0.05).")
    else:
        st.error(
            f"Safety regression against {previous} (p < 0.05): " + ", ".join(regressions["point"].tolist())
        )
    st.dataframe(
        cmp,
        hide_index=True,
        key="compare_table",
        column_config={
            "change": st.column_config.NumberColumn("change", format="%+.3f"),
            "change_low": st.column_config.NumberColumn("95% low", format="%+.3f"),
            "change_high": st.column_config.NumberColumn("95% high", format="%+.3f"),
            "p_value": st.column_config.NumberColumn("p", format="%.4f"),
        },
    )
    st.caption(
        f"Unsafe rate under {f.rule} on every unsafe prompt (mart_tradeoff). A change is called a regression "
        "only when the pooled two-proportion z test (pipelines.metrics) finds it significant and upward."
    )

st.subheader("Cost per method point")
cost = points[points["run_id"] == f.run_id]
cost = cost.assign(n_reused=cost["n_images"] - cost["n_generated"])
st.dataframe(
    cost[["point", "n_images", "n_generated", "n_reused", "seconds_per_image"]],
    hide_index=True,
    key="cost_table",
    column_config={"seconds_per_image": st.column_config.NumberColumn("s / generated image", format="%.2f")},
)
st.caption("Seconds are sampling time per image generated in this run; reused images cost nothing.")
