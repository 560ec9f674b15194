"""docs/DATA_DICTIONARY.md against the live schema of a freshly migrated warehouse: all of it, nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "DATA_DICTIONARY.md"
SECTION = re.compile(r"^### `(\w+)`\s*$")
COLUMN = re.compile(r"^\| `(\w+)` \| ([^|]+?) \| (.+) \|\s*$")


def parse(text: str) -> dict[str, dict]:
    """{relation: {"grain": str | None, "columns": {name: (type, meaning)}}} from the doc's sections."""
    out: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if m := SECTION.match(line):
            current = m.group(1)
            assert current not in out, f"{current} documented twice"
            out[current] = {"grain": None, "columns": {}}
        elif current is None:
            continue
        elif "**Grain:**" in line:
            out[current]["grain"] = line.split("**Grain:**", 1)[1].strip()
        elif m := COLUMN.match(line):
            name, typ, meaning = m.groups()
            assert name not in out[current]["columns"], f"{current}.{name} documented twice"
            out[current]["columns"][name] = (typ.strip(), meaning.strip())
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict[str, dict[str, str]]:
    from pipelines.warehouse import writer

    path = tmp_path_factory.mktemp("dictionary") / "empty.duckdb"
    with writer(path, publish=False) as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
    schema: dict[str, dict[str, str]] = {}
    for table, column, typ in rows:
        schema.setdefault(table, {})[column] = typ
    return schema


@pytest.fixture(scope="module")
def documented() -> dict[str, dict]:
    return parse(DOC.read_text())


def test_every_relation_is_documented_and_nothing_else(live, documented):
    missing = sorted(set(live) - set(documented))
    extra = sorted(set(documented) - set(live))
    assert not missing, f"not in docs/DATA_DICTIONARY.md: {missing}"
    assert not extra, f"documented but not in the warehouse: {extra}"


def test_every_column_is_documented_with_its_type_and_meaning(live, documented):
    problems = []
    for rel, columns in live.items():
        doc = documented.get(rel, {"columns": {}})["columns"]
        for col, typ in columns.items():
            if col not in doc:
                problems.append(f"{rel}.{col}: not documented")
            elif doc[col][0] != typ:
                problems.append(f"{rel}.{col}: documented as {doc[col][0]}, is {typ}")
            elif not doc[col][1]:
                problems.append(f"{rel}.{col}: no meaning")
        problems += [f"{rel}.{col}: documented but does not exist" for col in doc if col not in columns]
    assert not problems, "\n".join(problems)


def test_every_relation_states_its_grain(documented):
    assert all(d["grain"] for d in documented.values()), [r for r, d in documented.items() if not d["grain"]]


def test_parser_sees_what_it_should():
    doc = parse(
        "### `t`\n\nTable. **Grain:** one row per x.\n\n| column | type | meaning |\n|---|---|---|\n"
        "| `a` | VARCHAR[] | the a \\| b |\n"
    )
    assert doc == {"t": {"grain": "one row per x.", "columns": {"a": ("VARCHAR[]", "the a \\| b")}}}
