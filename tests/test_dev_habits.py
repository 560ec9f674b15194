"""Development habits the repository promises: the pre-commit hooks run the linters the project pins (one
ruff version in constraints.txt, the test extra and .pre-commit-config.yaml; sqlfluff only on sql/, with
the DuckDB dialect of .sqlfluff), and ``make test-fast`` deselects only registered markers."""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def hooks() -> dict[str, dict]:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    return {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}


def test_ruff_is_pinned_once():
    locked = pins()["ruff"]
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert f"ruff=={locked}" in extra
    assert f"pre-commit=={pins()['pre-commit']}" in extra
    for hook_id in ("ruff-check", "ruff-format"):
        assert hooks()[hook_id]["additional_dependencies"] == [f"ruff=={locked}"], hook_id


def test_hooks_match_make_lint():
    makefile = (REPO / "Makefile").read_text()
    lint = re.search(r"^lint:.*\n\t(.*)$", makefile, re.M).group(1)
    assert "ruff check" in lint and "ruff format --check" in lint
    assert hooks()["ruff-check"]["entry"].startswith("ruff check")
    assert hooks()["ruff-format"]["entry"].startswith("ruff format")


def test_sqlfluff_lints_sql_only_as_duckdb():
    hook = hooks()["sqlfluff-lint"]
    assert re.fullmatch(r"sqlfluff==[\d.]+", hook["additional_dependencies"][0])
    pattern = re.compile(hook["files"])
    assert pattern.search("sql/views/mart_tradeoff.sql") and pattern.search("sql/queries/report/x.sql")
    assert not pattern.search("pipelines/report.py") and not pattern.search("docs/specs/methods.md")
    config = configparser.ConfigParser()
    config.read(REPO / ".sqlfluff")
    assert config["sqlfluff"]["dialect"] == "duckdb"


def test_test_fast_deselects_registered_markers_only():
    makefile = (REPO / "Makefile").read_text()
    expr = re.search(r'^test-fast:.*\n\t.*-m "([^"]+)"', makefile, re.M).group(1)
    deselected = re.findall(r"not (\w+)", expr)
    assert {"slow", "celery", "browser", "tradeoff"} <= set(deselected)
    ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {m.split(":")[0] for m in ini["markers"]}
    assert set(deselected) <= registered
    assert "--strict-markers" in ini["addopts"]
    assert re.search(r"^test:.*\n\t\$\(PY\) -m pytest -q$", makefile, re.M)  # make test runs them all
