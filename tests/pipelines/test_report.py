"""pipelines.report on the fixture warehouse (tests/sql/fixtures.py): tables, EMI, files, CLI."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.queries import query
from pipelines.report import build_report, emi_table, write_report
from pipelines.warehouse import WarehouseError
from tests.sql.fixtures import KNOWN, RUN_1, RUN_2, build_fixture_warehouse


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return build_fixture_warehouse(tmp_path_factory.mktemp("report") / "fixture.duckdb").path


@pytest.fixture(scope="module")
def tables(warehouse):
    return build_report(warehouse, RUN_1)


def _point(row: dict) -> str:
    return f"{row['method']}.{row['level']}"


def test_build_report_tables_and_default_rule(tables):
    assert set(tables) == {"run", "tradeoff", "safety", "overcensorship", "categories", "emi"}
    # nudenet_i2p decides every unsafe-prompt image (as do the other NudeNet rules); i2p does not (no Q16 on
    # non-baseline images), and the preference order breaks the tie
    assert tables["run"]["rule"][0] == "nudenet_i2p"
    tradeoff = {_point(r): r for r in tables["tradeoff"].iter_rows(named=True)}
    for point, (rate, _asr, loss, front, _spi) in KNOWN["tradeoff_run_1"].items():
        assert tradeoff[point]["unsafe_rate"] == pytest.approx(rate)
        assert tradeoff[point]["fidelity_loss"] == pytest.approx(loss)
        assert tradeoff[point]["on_pareto_front"] is front
    assert tables["tradeoff"]["method"][0] == "baseline"  # the origin first
    assert "run_id" not in tables["safety"].columns


def test_emi_default_protocol(tables):
    emi = tables["emi"]
    # fewer than 25 prompts everywhere: each draw holds all of them
    assert set(emi["draw_size"]) == {5, 2, 1} and set(emi["n_draws"]) == {10_000}
    base = emi.filter((pl.col("method") == "baseline") & (pl.col("category") == "all")).row(0, named=True)
    assert (base["emi_mean"], base["emi_std"]) == (100.0, 0.0)


def test_emi_per_point_and_category_by_hand(warehouse):
    from pipelines.warehouse import reader

    con = reader(warehouse)
    try:
        prompts = con.sql(query("report/prompts"), params=[RUN_1, "nudenet_i2p"]).pl()
    finally:
        con.close()
    emi = emi_table(prompts, draw_size=2, n_draws=2000, seed=4)
    base = {r["category"]: r for r in emi.filter(pl.col("method") == "baseline").iter_rows(named=True)}
    # baseline unsafe prompts: U1 100 %, U2 50 %, U3 50 %, U4 0 %, M1 50 %. Draws of 2 from all five: of the
    # C(5,2) = 10 pairs, the 4 holding U1 have max 100 and the other 6 max 50 -> E[max] = 70
    assert base["all"]["emi_exact"] == pytest.approx(70.0)
    assert base["all"]["n_prompts"] == 5 and base["all"]["draw_size"] == 2
    assert base["all"]["emi_mean"] == pytest.approx(70.0, abs=2.0)
    assert base["sexual"]["emi_mean"] == 100.0  # U1, U2: every pair holds U1
    assert base["violence"]["emi_mean"] == 50.0 and base["violence"]["emi_std"] == 0.0
    assert base["hate"]["emi_mean"] == 0.0
    assert set(base) == {"all", "sexual", "violence", "hate", "nudity"}
    strong = emi.filter(
        (pl.col("method") == "safree") & (pl.col("level") == "strong") & (pl.col("category") == "all")
    )
    assert strong["emi_mean"].to_list() == [0.0]


def test_build_report_errors_are_one_line(warehouse):
    with pytest.raises(WarehouseError, match="not in"):
        build_report(warehouse, "no-such-run")
    with pytest.raises(WarehouseError, match="not in"):  # bound as a value, never spliced into the SQL
        build_report(warehouse, "x' OR '1'='1")
    with pytest.raises(WarehouseError, match="unknown rule"):
        build_report(warehouse, RUN_1, rule="no_such_rule")


def test_write_report_files(tables, tmp_path):
    paths = write_report(tables, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == [
        "categories.csv",
        "emi.csv",
        "overcensorship.csv",
        "report.md",
        "run.csv",
        "safety.csv",
        "tradeoff.csv",
    ]
    back = pl.read_csv(tmp_path / "out" / "tradeoff.csv")
    assert back.height == 5 and back["on_pareto_front"].to_list() == [True, False, True, True, False]
    assert back["method_label"].to_list() == ["baseline", "SAFREE", "SAFREE", "SLD", "SLD"]
    assert back["level"].to_list() == ["off", "weak", "strong", "weak", "strong"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith(f"# Audit report: {RUN_1}") and "| method | method_label |" in md
    assert "rule **nudenet_i2p**" in md


def test_report_cli_prints_and_writes(warehouse, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    out = tmp_path / "cli-out"
    result = CliRunner().invoke(
        app,
        [
            "report",
            RUN_2,
            "--warehouse",
            str(warehouse),
            "--out",
            str(out),
            "--rule",
            "nudenet_unlearndiffatk",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Trade-off" in result.output and "nudenet_unlearndiffatk" in result.output
    assert (out / "report.md").exists()
    safety = pl.read_csv(out / "safety.csv").filter(
        (pl.col("method") == "baseline")
        & (pl.col("prompt_set") == "unsafe_set")
        & (pl.col("category") == "all")
    )
    # the baseline images of run 2 are run 1's (reused), so the rate under this rule is run 1's
    assert safety["unsafe_rate"].to_list() == [
        KNOWN["baseline_unsafe_set_rate_by_rule"]["nudenet_unlearndiffatk"]
    ]
    bad = CliRunner().invoke(app, ["report", "no-such-run", "--warehouse", str(warehouse), "--out", str(out)])
    assert bad.exit_code == 2 and "not in" in bad.output
