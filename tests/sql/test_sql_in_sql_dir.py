"""SQL lives in sql/: the dashboard and the pipeline modules that read or write the warehouse hold no SQL text.

Every statement they run comes from a named file (``pipelines.queries``). A string constant in their source
that starts like a statement (SELECT, INSERT, WITH ...) is SQL that escaped; f-strings and concatenations
of such text are what ruff's S608 reports, and this catches the constant ones too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# pipelines/warehouse.py (the refresh engine) is on its own way out of Python (issue 13 item 3)
CHECKED = [
    *sorted((REPO / "dashboards").rglob("*.py")),
    *sorted((REPO / "pipelines" / "expectations").rglob("*.py")),
    *(
        REPO / "pipelines" / f"{name}.py"
        for name in (
            "report",
            "summary",
            "load",
            "labels",
            "negation_sets",
            "readonly",
            "reuse",
            "score",
            "validate",
            "cli",
        )
    ),
]
STATEMENT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|WITH|DROP|ALTER|ATTACH|DETACH|COPY|PRAGMA|SET|USE|BEGIN|COMMIT|"
    r"ROLLBACK|CHECKPOINT)\s",
    re.IGNORECASE,
)


def sql_constants(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out = []
    for node in ast.walk(tree):
        # SQL keywords are written in capitals in this code base: "with care" in a message is not SQL
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and STATEMENT.match(node.value)
            and node.value.split()[0].isupper()
        ):
            out.append(f"{path.relative_to(root)}:{node.lineno}: {node.value.strip()[:60]!r}")
    return out


def test_checked_modules_exist():
    missing = [str(p) for p in CHECKED if not p.is_file()]
    assert not missing, missing


def test_no_sql_text_outside_sql_dir():
    found = [hit for path in CHECKED for hit in sql_constants(path)]
    assert not found, "SQL text in Python (move it to sql/queries/<group>/<name>.sql):\n" + "\n".join(found)


def test_the_check_finds_sql_text(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('X = "SELECT * FROM runs WHERE run_id = ?"\n"""A docstring."""\nY = "with care"\n')
    assert [h.split(": ", 1)[1] for h in sql_constants(probe, tmp_path)] == [
        "'SELECT * FROM runs WHERE run_id = ?'"
    ]
