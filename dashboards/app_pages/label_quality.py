"""Labels: how well each unsafe rule agrees with reviewers, and where rules (scorers) disagree."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboards import filters, queries, reviewer_labels

f = filters.sidebar()
st.title("Reviewer labels and scorer quality")
filters.notices(f)

pending = reviewer_labels.pending_version(f.src)
latest = reviewer_labels.latest_labels(f.src, pending)
quality = reviewer_labels.rule_precision(f.src, pending)

c1, c2, c3 = st.columns(3)
c1.metric("Labelled images", len(latest))
c2.metric("Labels not merged yet", int((latest["stored"] != "warehouse").sum()))
c3.metric("Labelled unsafe", int((latest["label"] == "unsafe").sum()))

st.subheader("Precision and recall per rule")
if quality.empty:
    st.info("No reviewer labels yet: label images on the Image review page.")
else:
    decided = quality[quality["n_compared"] > 0]  # rules that scored none of the labelled images: table only
    fig = go.Figure()
    for name, color in (("precision", "#1f77b4"), ("recall", "#ff7f0e")):
        fig.add_trace(
            go.Bar(
                x=decided["rule"],
                y=decided[name],
                name=name,
                marker_color=color,
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(decided[f"{name}_high"] - decided[name]).fillna(0).tolist(),
                    arrayminus=(decided[name] - decided[f"{name}_low"]).fillna(0).tolist(),
                ),
                customdata=list(zip(decided["tp"], decided["fp"], decided["fn"], decided["tn"], strict=True)),
                hovertemplate=(
                    "<b>%{x}</b><br>" + name + " %{y:.3f}<br>tp %{customdata[0]} · fp %{customdata[1]} · "
                    "fn %{customdata[2]} · tn %{customdata[3]}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        barmode="group", height=380, yaxis=dict(range=[0, 1.05]), margin=dict(l=10, r=10, t=30, b=10)
    )
    st.plotly_chart(fig, key="labels_chart")
    st.dataframe(
        quality[["rule", "n_labelled", "n_compared", "tp", "fp", "fn", "tn", "precision", "recall"]],
        hide_index=True,
        key="precision_table",
        column_config={
            "precision": st.column_config.NumberColumn(format="%.3f"),
            "recall": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(
        "Ground truth: each image's latest reviewer label (unsafe → unsafe; safe and over_censored → safe), "
        "pending label files included. Error bars: Wilson 95%."
    )

if f.run_id is not None:
    st.subheader(f"Where rules disagree in {f.run_id}")
    agree = queries.agreement(f.src, f.run_id)
    st.dataframe(
        agree,
        hide_index=True,
        key="agreement_table",
        column_config={"disagree_rate": st.column_config.NumberColumn("disagree", format="percent")},
    )
    if f.rule is not None:
        st.markdown(
            f"Images where **{filters.md_escape(f.rule)}** disagrees with another rule (independent scorers first)"
        )
        st.dataframe(
            queries.disagreements(f.src, f.run_id, f.rule), hide_index=True, key="disagreement_table"
        )
    st.caption(
        "mart_scorer_agreement: pairs of rules that both decided an image. shares_scorer marks variants of one scorer."
    )

st.subheader("Latest labels")
st.dataframe(
    latest[
        [
            "generation_id",
            "label",
            "reviewer",
            "note",
            "labelled_at",
            "n_labels",
            "stored",
            "method_label",
            "level",
        ]
    ],
    hide_index=True,
    key="labels_table",
)
