"""The ``safeaudit`` command is assembled above both layers (safeaudit_cli): pipelines' commands and the
dashboard's, each imported explicitly; the pipelines layer alone builds without dashboards."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import typer.main

REPO = Path(__file__).resolve().parents[2]


def _names(app) -> set[str]:
    return set(typer.main.get_command(app).commands)


def test_the_assembly_holds_every_command_of_both_layers():
    from pipelines.cli import app as pipelines_app
    from safeaudit_cli import app

    pipelines_commands = _names(pipelines_app)
    assert {
        "run",
        "plan",
        "audit",
        "report",
        "validate",
        "negation-set",
        "toy",
        "methods",
    } <= pipelines_commands
    assert "dashboard" not in pipelines_commands  # pipelines never imports dashboards
    assert _names(app) == pipelines_commands | {"dashboard"}


def test_the_installed_script_is_the_assembly():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["safeaudit"] == "safeaudit_cli:app"
    assert "safeaudit_cli*" in project["tool"]["setuptools"]["packages"]["find"]["include"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_start_up_imports_no_heavy_library():
    out = _run(
        "import sys, safeaudit_cli\n"
        "print(','.join(m for m in ('torch', 'diffusers', 'airflow', 'great_expectations', 'streamlit')"
        " if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


def test_a_command_module_that_does_not_import_fails_the_cli_loudly():
    # a module under construction is not skipped: the CLI does not start, and says which module
    out = _run("import sys; sys.modules['pipelines.validate'] = None\nimport safeaudit_cli")
    assert out.returncode != 0
    assert "pipelines.validate" in out.stderr.strip().splitlines()[-1]
