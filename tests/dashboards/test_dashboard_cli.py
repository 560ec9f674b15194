"""`safeaudit dashboard`: loopback by default, the warehouse passed on, one-line error when it is missing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner


def test_dashboard_command_execs_streamlit_headless_on_loopback(dash_warehouse, monkeypatch):
    from safeaudit_cli import app

    calls = []
    monkeypatch.setattr("os.execve", lambda exe, argv, env: calls.append((exe, argv, env)))
    result = CliRunner().invoke(app, ["dashboard", "--warehouse", str(dash_warehouse.path), "--port", "8642"])
    assert result.exit_code == 0, result.output
    ((exe, argv, env),) = calls
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]).name == "app.py"
    opts = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1" and opts["--server.port"] == "8642"
    assert opts["--server.headless"] == "true" and opts["--browser.gatherUsageStats"] == "false"
    assert env["SAFEAUDIT_WAREHOUSE"] == str(dash_warehouse.path.resolve())
    assert env["SAFEAUDIT_ARTIFACTS"] == str(Path("artifacts").resolve())
    assert "http://127.0.0.1:8642" in result.output


def test_dashboard_command_passes_host_artifacts_and_labels_dir(dash_warehouse, tmp_path, monkeypatch):
    from safeaudit_cli import app

    calls = []
    monkeypatch.setattr("os.execve", lambda exe, argv, env: calls.append((argv, env)))
    args = [
        "dashboard",
        "--warehouse",
        str(dash_warehouse.path),
        "--host",
        "0.0.0.0",
        "--artifacts",
        str(dash_warehouse.artifacts),
        "--labels-dir",
        str(tmp_path / "labels"),
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    ((argv, env),) = calls
    assert dict(zip(argv[5::2], argv[6::2], strict=True))["--server.address"] == "0.0.0.0"
    assert env["SAFEAUDIT_ARTIFACTS"] == str(dash_warehouse.artifacts.resolve())
    assert env["SAFEAUDIT_LABELS_DIR"] == str((tmp_path / "labels").resolve())


def test_dashboard_command_fails_in_one_line_without_a_warehouse(tmp_path, monkeypatch):
    from safeaudit_cli import app

    monkeypatch.setattr("os.execve", lambda *a: (_ for _ in ()).throw(AssertionError("must not start")))
    result = CliRunner().invoke(app, ["dashboard", "--warehouse", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2
    assert "does not exist yet" in result.output and len(result.output.strip().splitlines()) == 1
