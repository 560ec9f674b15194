"""The audit's answer (pipelines.summary) and `safeaudit report`'s compact default, at 80 columns, on the
fixture warehouse (tests/sql/fixtures.py): the columns, the values, and that every line fits."""

from __future__ import annotations

import pytest
from rich.console import Console

from tests.sql.fixtures import KNOWN, RUN_1, build_fixture_warehouse

HEADER = ("method · level", "unsafe rate [95% CI]", "over-cens.", "acted", "front")
# fixture run 1 under nudenet_i2p: unsafe images / unsafe-role images, Wilson 95% at 2 decimals, 1 - SSIM
ROWS = {
    "baseline": ("0.50 [0.24, 0.76]", "0.00", True),
    "SAFREE · weak (0.3)": ("0.30 [0.11, 0.60]", "0.20", False),
    "SAFREE · strong (1)": ("0.00 [0.00, 0.28]", "0.30", True),
    "SLD · weak (0.5)": ("0.20 [0.06, 0.51]", "0.10", True),
    "SLD · strong (2)": ("0.10 [0.02, 0.40]", "0.40", False),
}
POINTS = {  # row label -> the fixture's method point, for its known acted share
    "baseline": "baseline.off",
    "SAFREE · weak (0.3)": "safree.weak",
    "SAFREE · strong (1)": "safree.strong",
    "SLD · weak (0.5)": "sld.weak",
    "SLD · strong (2)": "sld.strong",
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return build_fixture_warehouse(tmp_path_factory.mktemp("summary") / "fixture.duckdb").path


def _rows(lines: list[str]) -> dict[str, list[str]]:
    out = {}
    for line in lines:
        for label in ROWS:
            if line.strip().startswith(label + "  "):
                out[label] = line.strip()[len(label) :].split()
    return out


def _check_answer(lines: list[str]) -> None:
    assert all(len(line) <= 80 for line in lines), "\n".join(f"{len(x):3d} {x}" for x in lines)
    header = next(line for line in lines if HEADER[0] in line)
    positions = [header.index(c) for c in HEADER]
    assert positions == sorted(positions)  # the five columns, in order, on one line
    rows = _rows(lines)
    assert set(rows) == set(ROWS)
    for label, (interval, loss, front) in ROWS.items():
        cells = rows[label]
        assert " ".join(cells[:3]) == interval, (label, cells)
        assert cells[3] == loss
        assert cells[4] == f"{KNOWN['acted_rate'][(RUN_1, POINTS[label])]:.2f}"  # mart_tradeoff.acted_rate
        assert (cells[-1] == "★") is front
    # the marks agree with the mart's own front
    known_front = {p for p, v in KNOWN["tradeoff_run_1"].items() if v[3]}
    assert known_front == {"baseline.off", "sld.weak", "safree.strong"}


def test_summary_fits_80_columns_and_ends_with_where_to_look(warehouse):
    from pipelines.summary import print_summary

    console = Console(width=80, record=True)
    df = print_summary(console, warehouse, RUN_1)
    lines = console.export_text().splitlines()
    _check_answer(lines)
    assert df.height == 5 and "acted_rate" in df.columns
    from pipelines.summary import dashboard_command

    tail = lines[lines.index(f"run: {RUN_1}") :]
    assert tail[1].startswith("warehouse: ")
    assert tail[2] == "open the dashboard with:"
    # a long path folds at 80 columns; joined, the lines are the one command
    command = "".join(line.strip() + (" " if line.endswith(" ") else "") for line in tail[3:]).strip()
    assert " ".join(command.split()) == dashboard_command(warehouse)
    assert "dashboard --warehouse" in command


def test_cli_summary_path_is_the_answer(warehouse, monkeypatch):
    """`safeaudit run` / `safeaudit audit` end with cli._summary_table: the same answer, last."""
    from pipelines import cli

    console = Console(width=80, record=True)
    monkeypatch.setattr(cli, "console", console)
    cli._summary_table(str(warehouse), RUN_1)
    lines = console.export_text().splitlines()
    _check_answer(lines)
    assert "open the dashboard with:" in lines


def test_report_default_is_compact_and_wide_has_every_column(warehouse, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipelines.cli import app

    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(
        app, ["report", RUN_1, "--warehouse", str(warehouse), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    _check_answer(lines)
    assert "clip_score_drop" not in result.output  # compact: five columns only

    wide = CliRunner().invoke(
        app, ["report", RUN_1, "--warehouse", str(warehouse), "--out", str(tmp_path / "w"), "--wide"]
    )
    assert wide.exit_code == 0, wide.output
    header = next(line for line in wide.output.splitlines() if "unsafe_rate_low" in line)
    for column in ("n_scored", "asr", "fidelity_loss", "clip_score_drop", "on_pareto_front", "acted_rate"):
        assert column in header.split()
    # the files keep every column either way
    csv_header = (tmp_path / "r" / "tradeoff.csv").read_text().splitlines()[0].split(",")
    assert {"unsafe_rate_low", "toy_match_rate", "acted_rate", "seconds_per_image"} <= set(csv_header)
