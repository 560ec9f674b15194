"""The audit's answer in a terminal: per method point, unsafe rate [95% interval], over-censorship, acted
share and the Pareto mark, then where to look next (run id, warehouse, the dashboard command).

What ``safeaudit audit`` and ``safeaudit run`` print last, and ``safeaudit report``'s compact default. The
rows come from one named query on the marts (``sql/queries/audit_summary.sql``); this module only lays them
out, with rich's own width handling (fixed numeric columns that never wrap, one label column that folds),
so the table fits an 80-column terminal.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table

from pipelines.queries import query

WIDTH = 80  # what the summary is laid out for (a terminal that is wider shows the same table)


def summary_frame(con, run_id: str, rule: str) -> pl.DataFrame:
    """``audit_summary.sql`` for one run and rule (an open warehouse connection)."""
    return con.sql(query("audit_summary"), params=[run_id, rule]).pl()


def load_summary(warehouse: str | Path, run_id: str, rule: str | None = None) -> tuple[str, pl.DataFrame]:
    """(rule, summary rows) from the warehouse's read snapshot; the rule defaults to the report's choice."""
    from pipelines.report import choose_rule
    from pipelines.warehouse import reader

    con = reader(warehouse)
    try:
        rule = rule or choose_rule(con, run_id)
        return rule, summary_frame(con, run_id, rule)
    finally:
        con.close()


def point_label(row: dict[str, Any]) -> str:
    """``SLD · strong`` (``baseline`` alone; a knob value in brackets when the point is a knob setting)."""
    if row.get("is_baseline"):
        return "baseline"
    name = f"{row.get('method_label') or row['method']} · {row['level']}"
    knob = row.get("knob")
    if knob is not None and not (isinstance(knob, float) and math.isnan(knob)):
        name += f" ({knob:g})"
    return name


def _num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}"


def _interval(row: dict[str, Any]) -> str:
    if row.get("unsafe_rate") is None:
        return "—"
    return f"{_num(row['unsafe_rate'])} [{_num(row['unsafe_rate_low'])}, {_num(row['unsafe_rate_high'])}]"


def _pareto(v: Any) -> str:
    return "—" if v is None else ("★" if v else "")


COMPACT_COLUMNS = ("method · level", "unsafe rate [95% CI]", "over-cens.", "acted", "front")


def compact_table(df: pl.DataFrame, title: str | None = None, caption: str | None = None) -> Table:
    """The five-column answer: a rich Table whose numeric columns never wrap; the label column folds."""
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column(COMPACT_COLUMNS[0], overflow="fold", min_width=12, ratio=1)
    table.add_column(COMPACT_COLUMNS[1], no_wrap=True, min_width=18, justify="left")
    table.add_column(COMPACT_COLUMNS[2], no_wrap=True, min_width=10, justify="right")
    table.add_column(COMPACT_COLUMNS[3], no_wrap=True, min_width=5, justify="right")
    table.add_column(COMPACT_COLUMNS[4], no_wrap=True, min_width=5, justify="center")
    several = "model_id" in df.columns and df["model_id"].n_unique() > 1  # a run over several models
    for row in df.iter_rows(named=True):
        label = point_label(row)
        if several:  # each model has its own baseline: say whose row it is
            label = f"{str(row['model_id']).removeprefix('builtin:').rsplit('/', 1)[-1]}: {label}"
        table.add_row(
            label,
            _interval(row),
            _num(row.get("fidelity_loss")),
            _num(row.get("acted_rate")),
            _pareto(row.get("on_pareto_front")),
        )
    return table


CAPTION = (
    "over-cens. = 1 − SSIM vs the same-seed baseline on benign, proximal and paired prompts; "
    "acted = share of images the method changed (— where not recorded); ★ = on the Pareto front "
    "(unsafe rate vs over-cens.)."
)


def dashboard_command(warehouse: str | Path) -> str:
    """The one command that opens the dashboard on this warehouse (relative paths kept short)."""
    from pipelines.cli import DEFAULT_WAREHOUSE

    path = Path(warehouse)
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        rel = path.resolve()
    exe = ".venv/bin/safeaudit" if Path(".venv/bin/safeaudit").exists() else "safeaudit"
    if str(rel) == DEFAULT_WAREHOUSE:
        return f"{exe} dashboard"
    return f"{exe} dashboard --warehouse {rel}"


def print_summary(
    console: Console, warehouse: str | Path, run_id: str, rule: str | None = None, *, footer: bool = True
) -> pl.DataFrame:
    """Print the answer for one run, then (``footer``) its id, the warehouse and the dashboard command."""
    rule, df = load_summary(warehouse, run_id, rule)
    console.print(compact_table(df, title=f"The answer (unsafe rule {rule})", caption=CAPTION))
    if footer:
        console.print(f"run: {run_id}", highlight=False)
        console.print(f"warehouse: {Path(warehouse).resolve()}", highlight=False)
        console.print("open the dashboard with:", highlight=False)
        console.print(f"  {dashboard_command(warehouse)}", highlight=False)
    return df
