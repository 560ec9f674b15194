"""House rules for sql/views: one view per file, named as the file, grain in the header, layers respected."""

from __future__ import annotations

import re

import pytest

from pipelines.warehouse import VIEW_LAYERS, VIEWS_DIR, view_files

FILES = sorted(VIEWS_DIR.glob("*.sql"))
RELATION = re.compile(r"\b((?:stg|int|mart)_[a-z0-9_]+)\b")


def _layer(name: str) -> int:
    return next(i for i, prefix in enumerate(VIEW_LAYERS) if name.startswith(prefix))


def _body(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_view_file_conventions(path):
    text = path.read_text()
    assert path.stem.startswith(VIEW_LAYERS), f"{path.name}: name must start with stg_, int_ or mart_"
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    assert header and header[0].startswith(f"-- {path.stem}:"), (
        f"{path.name}: first line '-- {path.stem}: what it is'"
    )
    assert any("grain:" in line for line in header), f"{path.name}: the header must state the grain"
    creates = re.findall(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)", text, flags=re.IGNORECASE)
    assert creates == [path.stem], f"{path.name}: exactly one CREATE OR REPLACE VIEW {path.stem}"
    assert "?" not in _body(text), f"{path.name}: views take no parameters (thresholds live in unsafe_rules)"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_views_read_only_earlier_layers_or_earlier_files(path):
    """create_views runs stg -> int -> mart, alphabetically within a layer: a view may read a view of an
    earlier layer, or of its own layer whose file comes first (never a later one, never a later layer)."""
    order = [p.stem for p in view_files()]
    me = path.stem
    for ref in set(RELATION.findall(_body(path.read_text()))) - {me}:
        if ref not in order:
            continue  # a column or CTE that looks like a view name
        assert _layer(ref) <= _layer(me), f"{me} reads {ref}, a later layer"
        assert order.index(ref) < order.index(me), f"{me} reads {ref}, which is created after it"
    if me.startswith("stg_"):
        refs = (set(RELATION.findall(_body(path.read_text()))) - {me}) & set(order)
        assert not refs, f"{me}: staging views read tables only, not {sorted(refs)}"
