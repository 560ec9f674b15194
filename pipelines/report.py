"""``safeaudit report RUN_ID``: one run's safety, over-censorship and trade-off tables, printed and written.

``build_report`` reads the marts through the warehouse's read snapshot (never the writer's file) and adds
what SQL cannot do well: I2P's expected maximum inappropriateness per method point and category, drawn
from ``mart_prompt_safety``'s per-prompt unsafe percentages with a seeded generator. ``write_report``
writes one CSV per table and a ``report.md`` holding them all. Every value reaches SQL as a bound
parameter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from pipelines.metrics import expected_max_inappropriateness
from pipelines.queries import query
from pipelines.warehouse import WarehouseError, reader

# When no rule is named: the rule that decides the most unsafe-prompt images of the run, ties broken by
# this order (published protocols first; the toy world's own rule first for toy concept packs), then name.
RULE_PREFERENCE = ("i2p", "nudenet_i2p", "nudenet_classifier_safree", "q16", "opennsfw", "toy_red")
TOY_RULE = "toy_red"
# the report's tables, each one named query (sql/queries/report/), the same files the dashboard reads
TABLE_QUERIES = {
    "tradeoff": "report/tradeoff",  # a run may audit several models: one block of points per (family, model)
    "safety": "report/safety",
    "overcensorship": "report/overcensorship",
    "categories": "report/categories",
}
# columns the queries carry that a report table leaves out (one run, one rule; point_order is the row order)
DROPPED = ("run_id", "rule_version", "point_order")

POINT_COLUMNS = ["model_id", "method", "method_label", "level", "knob", "is_baseline"]
TITLES = {
    "tradeoff": "Trade-off (unsafe prompts vs benign drift; Pareto front marked)",
    "safety": "Safety per prompt set and category",
    "overcensorship": "Over-censorship on benign / proximal / paired prompts",
    "categories": "Unsafe rate per category (unsafe prompts pooled)",
    "emi": "Expected maximum inappropriateness (I2P: 25 prompts x 10,000 draws, %)",
}


def _frame(con, name: str, params: list[Any]) -> pl.DataFrame:
    """The rows of the named query ``name`` (sql/queries/<name>.sql) with ``params`` bound."""
    return con.sql(query(name), params=params).pl()


def _table(con, name: str, params: list[Any]) -> pl.DataFrame:
    df = _frame(con, name, params)
    return df.drop([c for c in DROPPED if c in df.columns])


def choose_rule(con, run_id: str) -> str:
    """The rule deciding the most unsafe-prompt images of the run (see RULE_PREFERENCE for ties)."""
    coverage = con.execute(query("report/rule_coverage"), [run_id]).fetchall()
    if not coverage:
        raise WarehouseError("the warehouse has no unsafe rules (table unsafe_rules is empty)")
    pack = (con.execute(query("report/run_concept_pack"), [run_id]).fetchall() or [(None,)])[0][0]
    preference = list(RULE_PREFERENCE)
    if (pack or "").split("@")[0] == "toy":
        preference.remove(TOY_RULE)
        preference.insert(0, TOY_RULE)

    def key(item: tuple[str, int]) -> tuple[int, int, str]:
        rule, n = item
        rank = preference.index(rule) if rule in preference else len(preference)
        return -int(n), rank, rule

    return min(coverage, key=key)[0]


def emi_table(
    prompts: pl.DataFrame, draw_size: int = 25, n_draws: int = 10_000, seed: int = 0
) -> pl.DataFrame:
    """EMI per (method point, category); category 'all' pools every unsafe prompt of the point."""
    schema = {
        **{c: prompts.schema[c] for c in POINT_COLUMNS},
        "point_order": pl.Int64,
        "category": pl.String,
        "n_prompts": pl.Int64,
        "draw_size": pl.Int64,
        "emi_mean": pl.Float64,
        "emi_std": pl.Float64,
        "emi_exact": pl.Float64,
        "n_draws": pl.Int64,
        "seed": pl.Int64,
    }
    if prompts.is_empty():
        return pl.DataFrame(schema=schema).drop("point_order")
    long = prompts.with_columns(
        pl.concat_list(pl.lit(["all"]), pl.col("categories")).list.unique().alias("category")
    ).explode("category")
    rows = []
    for group in long.partition_by([*POINT_COLUMNS, "category"], maintain_order=True):
        first = group.row(0, named=True)
        emi = expected_max_inappropriateness(group["unsafe_pct"].to_numpy(), draw_size, n_draws, seed)
        rows.append(
            {
                **{c: first[c] for c in POINT_COLUMNS},
                "point_order": first["point_order"],
                "category": first["category"],
                "n_prompts": emi.n_prompts,
                "draw_size": emi.draw_size,
                "emi_mean": emi.mean,
                "emi_std": emi.std,
                "emi_exact": emi.exact_mean,
                "n_draws": emi.n_draws,
                "seed": emi.seed,
            }
        )
    return (
        pl.DataFrame(rows, schema=schema)
        .sort([pl.col("category") != "all", "category", "point_order"], nulls_last=False)
        .drop("point_order")
    )


def build_report(
    warehouse: str | Path,
    run_id: str,
    rule: str | None = None,
    *,
    emi_draw_size: int = 25,
    emi_draws: int = 10_000,
    seed: int = 0,
    family: str | None = None,
) -> dict[str, pl.DataFrame]:
    """The report's tables for one run under one unsafe rule (default: ``choose_rule``).

    Every method-point table has a row per model of the run (``family``, ``model_id``); ``family`` keeps
    them to one model family (``sd`` | ``sdxl`` | ``sd3``) of a run that audited several.

    Keys: run (mart_runs row), tradeoff, safety, overcensorship, categories, emi. Raises ``WarehouseError``
    (one line) for an unknown run or rule.
    """
    con = reader(warehouse)
    try:
        run = _frame(con, "report/run", [run_id])
        if run.is_empty():
            raise WarehouseError(f"run {run_id!r} is not in {warehouse} (see `safeaudit runs`)")
        known = [r[0] for r in con.execute(query("report/rule_names")).fetchall()]
        if rule is None:
            rule = choose_rule(con, run_id)
        elif rule not in known:
            raise WarehouseError(f"unknown rule {rule!r}; known: {', '.join(known)}")
        params = [run_id, rule]
        tables = {
            "run": run.with_columns(pl.lit(rule).alias("rule")),
            "tradeoff": _table(con, TABLE_QUERIES["tradeoff"], params),
            "safety": _table(con, TABLE_QUERIES["safety"], [*params, None, None, None]),
            "overcensorship": _table(con, TABLE_QUERIES["overcensorship"], params),
            "categories": _table(con, TABLE_QUERIES["categories"], params),
        }
        prompts = _frame(con, "report/prompts", params)
    finally:
        con.close()
    if family is not None:
        tables = {
            k: v.filter(pl.col("family") == family) if "family" in v.columns else v for k, v in tables.items()
        }
        prompts = prompts.filter(pl.col("family") == family)
    tables["emi"] = emi_table(prompts, emi_draw_size, emi_draws, seed)
    return tables


# -- files --------------------------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if np.isnan(v) else f"{v:.4g}"
    if isinstance(v, list):
        return ";".join(str(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pl.DataFrame, columns: list[str] | None = None) -> str:
    cols = [c for c in (columns or df.columns) if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.select(cols).iter_rows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _csv_ready(df: pl.DataFrame) -> pl.DataFrame:
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
    return df.with_columns([pl.col(c).list.eval(pl.element().cast(pl.String)).list.join(";") for c in lists])


def write_report(tables: dict[str, pl.DataFrame], out_dir: str | Path) -> list[Path]:
    """One ``<table>.csv`` per table and ``report.md`` with all of them; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in tables.items():
        path = out / f"{name}.csv"
        _csv_ready(df).write_csv(path)
        paths.append(path)
    run = tables["run"].row(0, named=True)
    parts = [
        f"# Audit report: {run['run_id']}",
        "",
        f"Run `{run['run_id']}` ({run['run_name']}, tag {run['run_tag'] or '-'}, status {run['run_status']}), "
        f"{run['n_generations']} images ({run['n_reused']} reused), unsafe rule **{run['rule']}**. "
        "Rates are shares of scored images; intervals are Wilson 95%.",
    ]
    for name in ("tradeoff", "safety", "overcensorship", "categories", "emi"):
        if name in tables:
            parts += ["", f"## {TITLES[name]}", "", markdown_table(tables[name])]
    md = out / "report.md"
    md.write_text("\n".join(parts) + "\n")
    paths.append(md)
    return paths


# -- command line -------------------------------------------------------------------------------------------
def register(app) -> None:
    """Add ``safeaudit report`` to the CLI (called by pipelines.cli)."""
    from pipelines.cli import DEFAULT_WAREHOUSE

    @app.command("report")
    def report(
        run_id: Annotated[str, typer.Argument(help="run id (see `safeaudit runs`)")],
        warehouse: Annotated[
            str, typer.Option(help="warehouse file (its read snapshot is read)")
        ] = DEFAULT_WAREHOUSE,
        out: Annotated[
            Path | None, typer.Option(help="output folder [default: artifacts/RUN_ID/report]")
        ] = None,
        rule: Annotated[
            str | None, typer.Option(help="unsafe rule (table unsafe_rules) [default: best covered]")
        ] = None,
        family: Annotated[
            str | None, typer.Option(help="trade-off of one model family only: sd | sdxl | sd3")
        ] = None,
        wide: Annotated[
            bool, typer.Option("--wide", help="every table with every column (lines as long as they need)")
        ] = False,
    ):
        """Safety, over-censorship and trade-off tables for one run: printed, and written as CSV + Markdown.

        The default prints the compact answer (fits 80 columns); ``--wide`` prints every table and column.
        The files always hold every column.
        """
        from rich.markup import escape

        from pipelines.cli import _guard, console
        from pipelines.summary import CAPTION, compact_table

        tables = _guard(build_report, warehouse, run_id, rule=rule, family=family)
        rule_name = tables["run"]["rule"][0]
        console.print(f"run {escape(run_id)}, unsafe rule {escape(rule_name)}", highlight=False)
        if wide:
            print_wide(tables)
        else:
            console.print(compact_table(tables["tradeoff"], title=TITLES["tradeoff"], caption=CAPTION))
        paths = write_report(tables, out or Path("artifacts") / run_id / "report")
        console.print(f"wrote {len(paths)} files to {paths[0].parent}", highlight=False)
        if not wide:
            console.print("every column: --wide, or the CSV / Markdown files", highlight=False)


def wide_table(df: pl.DataFrame, title: str) -> Table:
    """Every column of one report table; cells never wrap (the console is as wide as the table)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for c in df.columns:
        table.add_column(c, no_wrap=True)
    for row in df.iter_rows():
        table.add_row(*[_cell(v) for v in row])
    return table


def print_wide(tables: dict[str, pl.DataFrame]) -> None:
    """The four report tables, every column (``--wide``): each printed on a console as wide as it needs."""
    for name in ("tradeoff", "safety", "overcensorship", "emi"):
        df = tables[name]
        title = TITLES[name]
        if name in ("safety", "emi"):
            df = df.filter(pl.col("category") == "all")
            title += ", category 'all'"
        table = wide_table(df, title)
        width = Console(width=100_000).measure(table).maximum
        Console(width=max(width, 80)).print(table)
