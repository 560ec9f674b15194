"""Sidebar filters shared by every page, their state kept across pages and mirrored in the URL.

Each filter is a widget whose value lives in ``st.session_state["f_<name>"]`` (so it survives switching
pages, where Streamlit drops widgets it no longer draws) and in the query parameter ``<name>`` (so a view
can be shared as a link). A value from the URL is used only if it is one of the current options (matched
as text, or as a number for numeric options): anything else (a quoted SQL fragment, a path, an unknown
run) is ignored and reported in a warning that does not echo it. Values never reach SQL except as bound
parameters in ``dashboards.queries``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import connection, queries

ALL = "(all)"
MAX_PARAM_LEN = 256
QUARANTINED_PARAM = "quarantined"


@dataclass
class Filters:
    src: connection.Source
    concept: str | None = None
    include_quarantined: bool = False
    run_id: str | None = None
    run: dict[str, Any] | None = None
    runs: pd.DataFrame | None = None
    family: str | None = None
    model_id: str | None = None
    rule: str | None = None
    rule_info: dict[str, Any] = field(default_factory=dict)
    prompt_set: str | None = None
    category: str | None = None
    threshold: float | None = None
    rejected: list[str] = field(default_factory=list)

    @property
    def run_is_quarantined(self) -> bool:
        return bool(self.run and self.run.get("run_status") == queries.QUARANTINED)


def _rejected() -> list[str]:
    return st.session_state.setdefault("_rejected_params", [])


def _match(raw: Any, options: Sequence[Any]) -> tuple[bool, Any]:
    """(found, option) for a query-parameter string; numbers compare as numbers (1e-9 for floats)."""
    if not isinstance(raw, str) or len(raw) > MAX_PARAM_LEN:
        return False, None
    for opt in options:
        if isinstance(opt, bool):
            if (raw.lower() in ("1", "true", "yes")) == opt and raw.lower() in (
                "1",
                "true",
                "yes",
                "0",
                "false",
                "no",
            ):
                return True, opt
        elif isinstance(opt, int | float) and not isinstance(opt, bool):
            try:
                v = float(raw)
            except ValueError:
                return False, None
            if math.isfinite(v) and abs(v - float(opt)) < 1e-9:
                return True, opt
        elif raw == str(opt):
            return True, opt
    return False, None


def _to_param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def choose(
    name: str,
    options: Sequence[Any],
    widget: Callable[..., Any],
    label: str,
    *,
    default: Any = None,
    container: Any = None,
    url: bool = True,
    scope: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw ``widget(label, options, key=...)`` with persisted, URL-synced state; returns the value.

    ``widget`` is a Streamlit selection widget taking ``options`` (selectbox, radio, select_slider) or
    ``st.checkbox`` (pass ``options=(False, True)``). ``scope`` keeps one remembered value per scope (the
    threshold per rule, so a new rule starts at its own threshold).
    """
    store, key = f"f_{name}" + (f"@{scope}" if scope else ""), f"w_{name}"
    options = list(options)
    if not options:
        return None
    last = st.session_state.setdefault("_url_last", {})
    raw = st.query_params.get(name) if url else None
    if raw is not None and raw != last.get(name):  # a link (or an edited URL) decides
        found, value = _match(raw, options)
        if found:
            st.session_state[store] = value
        else:
            _rejected().append(name)
    current = st.session_state.get(store, default)
    if current not in options:
        current = default if default in options else options[0]
    st.session_state[store] = current
    st.session_state[key] = current

    def _keep() -> None:
        st.session_state[store] = st.session_state[key]

    target = container if container is not None else st.sidebar
    if widget is st.checkbox or widget is st.toggle:
        value = getattr(target, widget.__name__)(label, key=key, on_change=_keep, **kwargs)
    else:
        value = getattr(target, widget.__name__)(label, options, key=key, on_change=_keep, **kwargs)
    if url:
        last[name] = st.query_params[name] = _to_param(value)
    return value


def sidebar(
    *, family: bool = False, prompt_set: bool = False, category: bool = False, threshold: bool = False
) -> Filters:
    """The common filters (concept pack, quarantined, run, rule) plus the ones a page asks for.

    ``family``: the model family of the run to show (a run may audit several models, e.g. SD and SDXL;
    their points are never mixed on one chart), then the model when the run holds two of that family."""
    src = connection.source()
    f = Filters(src=src)
    runs = queries.runs(src)
    f.runs = runs
    sb = st.sidebar
    sb.markdown("### Filters")

    packs = sorted({p for p in runs["concept_pack"].dropna()})
    f.concept = choose("concept", [ALL, *packs], st.selectbox, "Concept pack")
    f.concept = None if f.concept == ALL else f.concept
    f.include_quarantined = bool(
        choose(
            QUARANTINED_PARAM,
            [False, True],
            st.checkbox,
            "Include quarantined runs",
            default=False,
            help="Quarantined runs failed validation: shown with a badge, never as results.",
        )
    )
    pool = runs if f.concept is None else runs[runs["concept_pack"] == f.concept]
    if not f.include_quarantined:
        quarantined_ids = set(pool[pool["is_quarantined"]]["run_id"])
        pool = pool[~pool["is_quarantined"]]
    else:
        quarantined_ids = set()
    run_ids = list(pool.sort_values(["planned_at", "run_id"], ascending=False)["run_id"])
    labels = {
        r["run_id"]: ("QUARANTINED · " if r["is_quarantined"] else "")
        + r["run_id"]
        + (f" · {r['run_tag']}" if isinstance(r["run_tag"], str) else "")
        for r in pool.to_dict("records")
    }
    raw_run = st.query_params.get("run")
    if raw_run in quarantined_ids and raw_run != st.session_state.get("_url_last", {}).get("run"):
        st.session_state["_quarantine_hint"] = True
    f.run_id = choose("run", run_ids, st.selectbox, "Run", format_func=lambda r: labels.get(r, r))
    if f.run_id is not None:
        f.run = runs[runs["run_id"] == f.run_id].iloc[0].to_dict()

    if family and f.run_id:
        models = queries.run_models(src, f.run_id)
        families = sorted(set(models["family"].dropna()))
        f.family = choose("family", families, st.selectbox, "Model family", help="sd = SD 1.x/2.x")
        ids = list(models[models["family"] == f.family]["model_id"])
        if len(ids) > 1:
            f.model_id = choose("model", ids, st.selectbox, "Model")
        elif ids:
            f.model_id = ids[0]

    rules = queries.rules(src)
    rule_names = list(rules["rule"])
    default_rule = queries.default_rule(src, f.run_id) if f.run_id else None
    f.rule = choose(
        "rule", rule_names, st.selectbox, "Unsafe rule (scorer · label set · threshold)", default=default_rule
    )
    if f.rule is not None:
        f.rule_info = rules[rules["rule"] == f.rule].iloc[0].to_dict()
        sb.caption(f.rule_info.get("description") or "")

    if prompt_set and f.run_id:
        sets = queries.prompt_sets(src, f.run_id)
        unsafe_sets = [
            s for s, roles in zip(sets["prompt_set"], sets["prompt_roles"], strict=True) if "unsafe" in roles
        ]
        chosen = choose("set", [ALL, *unsafe_sets], st.selectbox, "Unsafe prompt set")
        f.prompt_set = None if chosen == ALL else chosen
    if category and f.run_id:
        cats = queries.categories(src, f.run_id, f.prompt_set)
        chosen = choose("category", [ALL, *cats], st.selectbox, "Category")
        f.category = None if chosen == ALL else chosen
    if threshold and f.run_id and f.rule:
        grid = queries.thresholds(src, f.run_id, f.rule)
        own = f.rule_info.get("threshold")
        if grid and own is not None and not pd.isna(own):
            own = float(own)
            f.threshold = choose(
                "thr",
                grid,
                st.select_slider,
                f"Threshold ({f.rule_info.get('op')} · rule's own {own:g})",
                default=min(grid, key=lambda t: abs(t - own)),
                format_func=lambda t: f"{t:g}",
                scope=f.rule,
            )
        else:
            sb.caption("This rule has several clauses (or no swept scores): no single threshold to move.")

    sb.divider()
    sb.caption(f"Warehouse snapshot: `{src.snapshot}`")
    sb.caption(f"Snapshot published: {pd.Timestamp(src.mtime_ns, unit='ns'):%Y-%m-%d %H:%M:%S} UTC")
    return f


def notices(f: Filters) -> None:
    """What every page shows at its top: a quarantined run's badge, and (filled in by ``finish`` once the
    page has drawn its own filters) the link parameters that were ignored."""
    st.session_state["_notice_box"] = st.container()
    if st.session_state.pop("_quarantine_hint", False):
        st.info(
            "The linked run is quarantined: tick *Include quarantined runs* in the sidebar to inspect it."
        )
    if f.run_is_quarantined:
        st.badge("QUARANTINED", icon=":material/block:", color="red")
        st.error(
            f"Run {f.run_id} failed validation and is quarantined: its numbers are shown for diagnosis, "
            "not as results."
        )


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()#+-.!|<>~$"})


def md_escape(text: object) -> str:
    """Text from the warehouse (prompts, ids, notes) shown inside Markdown without being interpreted."""
    return str(text).replace("\n", " ").translate(_MD_SPECIAL)


def finish() -> None:
    """Report ignored link parameters in the box ``notices`` left at the top of the page (app.py calls this
    after every page, also when the page stopped early). Names only: the rejected values are not echoed."""
    box = st.session_state.pop("_notice_box", None)
    rejected = st.session_state.get("_rejected_params") or []
    if rejected and box is not None:
        names = ", ".join(sorted(set(rejected)))
        box.warning(f"Ignored link parameters that match no current option: {names}.")
        st.session_state["_rejected_params"] = []
