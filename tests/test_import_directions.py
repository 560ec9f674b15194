"""Imports point one way: models <- pipelines <- dashboards <- the CLI assembly (safeaudit_cli).

Read with ``ast`` from every ``.py`` under models/, pipelines/ and dashboards/: top-level and function-level
``import`` / ``from ... import`` statements (relative ones resolved against the file's package), and string
literals that name a module the way ``importlib.import_module`` and the registries take one
(``"dashboards.cli"``, ``"pipelines.scorers.toy:ToyConceptScorer"``): a lazy or string import is still an
arrow, wherever the string is passed on to be imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("models", "pipelines", "dashboards")  # each may import only the ones before it
FORBIDDEN = {
    "models": {"pipelines", "dashboards", "safeaudit_cli"},
    "pipelines": {"dashboards", "safeaudit_cli"},
    "dashboards": {"safeaudit_cli"},
}
# a dotted path of identifiers, optionally ":attr" (a registry's lazy target); no spaces: not prose
MODULE_STRING = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_][\w.]*)?|[A-Za-z_]\w*:[A-Za-z_][\w.]*")


def imported_modules(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in the file, lazy and dynamic ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the file's package
                package = list(path.relative_to(root).parts[:-1])
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module:
                out.append((node.lineno, module))
            else:  # `from .. import x`: x is a top-level module
                out += [(node.lineno, a.name) for a in node.names]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_STRING.fullmatch(node.value)
        ):
            out.append((node.lineno, node.value.partition(":")[0]))
    return sorted(out)


def violations(root: Path = REPO) -> list[str]:
    found = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((root / layer).rglob("*.py")):
            for line, module in imported_modules(path, root):
                top = module.split(".")[0]
                if top in banned:
                    found.append(f"{path.relative_to(root)}:{line}: {layer} imports {module}")
    return found


def test_imports_point_one_way():
    found = violations()
    assert not found, "imports against the layering (models <- pipelines <- dashboards):\n" + "\n".join(found)


def test_the_reader_sees_lazy_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "import importlib\n"
        "def f():\n"
        "    from pipelines.scorers import toy\n"
        "    return importlib.import_module('dashboards.cli')\n"
        "PLUGINS = ('pipelines.report', 'see pipelines.report for details')\n"  # prose is not an import
    )
    (pkg / "b.py").write_text("from .a import f\nimport models.a\n")  # inside the layer: fine
    (pkg / "c.py").write_text("from .. import dashboards\n")  # relative, out of the layer: resolved
    found = violations(tmp_path)
    assert found == [
        "models/a.py:3: models imports pipelines.scorers",
        "models/a.py:4: models imports dashboards.cli",
        "models/a.py:5: models imports pipelines.report",
        "models/c.py:1: models imports dashboards",
    ]


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_read(layer):
    assert any(imported_modules(p) for p in (REPO / layer).rglob("*.py")), layer
