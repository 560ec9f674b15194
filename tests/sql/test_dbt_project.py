"""The dbt project is rendered from sql/views and matches it: one model per view file, the same lineage.

The lineage is checked against DuckDB's own parser (``json_serialize_sql`` of each file's SELECT), not the
generator's regex, so a relation the generator fails to turn into ``ref`` / ``source`` fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines import dbt_project
from pipelines.warehouse import ViewDef, materialized, view_defs

REF = re.compile(r"ref\('(\w+)'\)")
SOURCE = re.compile(r"source\('safeaudit', '(\w+)'\)")


def _parsed_relations(select: str) -> set[str]:
    con = duckdb.connect()
    tree = json.loads(con.execute("SELECT json_serialize_sql($1)", [select]).fetchall()[0][0])
    assert not tree["error"], tree
    out: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                out.add(node["table_name"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(tree)
    return out


def test_one_model_per_view_file_in_its_layer(tmp_path):
    written = dbt_project.write(tmp_path / "models")
    names = {p.stem for p in written}
    assert names == {d.name for d in view_defs()}
    for p in written:
        assert p.parent.name == dbt_project.LAYER_DIRS[p.stem.split("_")[0] + "_"]
        text = p.read_text()
        assert "CREATE OR REPLACE VIEW" not in text.upper()
        assert f"sql/views/{p.stem}.sql" in text.splitlines()[0]


def test_lineage_matches_duckdbs_parser():
    views = {d.name for d in view_defs()}
    tables = set(dbt_project.base_tables())
    assert {"runs", "generations", "scores", "unsafe_rules"} <= tables
    for d, m in zip(view_defs(), dbt_project.models(), strict=True):
        parsed = _parsed_relations(d.select)
        assert set(REF.findall(m.sql)) == parsed & views, d.name
        assert set(SOURCE.findall(m.sql)) == parsed & tables, d.name
        assert set(m.refs) == parsed & views and set(m.sources) == parsed & tables


def test_materialised_files_are_incremental_models_with_their_key():
    keyed = {d.name: d for d in materialized()}
    assert len(keyed) >= 7
    for m in dbt_project.models():
        if m.name in keyed:
            d = keyed[m.name]
            assert f"materialized='incremental', unique_key='{d.key}'" in m.sql
            assert "delete+insert" in m.sql
            for name in d.narrowed:  # each narrowed input read through narrow(), by the model's key
                assert re.search(rf"narrow\((ref|source)\([^)]*'{name}'\), '{d.key}'\)", m.sql), (
                    m.name,
                    name,
                )
        else:
            assert "materialized='view'" in m.sql and "narrow(" not in m.sql


def test_every_model_has_docs_and_tests_beside_it():
    schema = yaml.safe_load((dbt_project.DBT_DIR / "schema" / "schema.yml").read_text())
    documented = {m["name"]: m for m in schema["models"]}
    assert set(documented) == {d.name for d in view_defs()}
    for name, m in documented.items():
        tests = m.get("data_tests", []) + [t for c in m.get("columns", []) for t in c.get("data_tests", [])]
        assert tests, f"{name}: no test in schema.yml"
    sources = yaml.safe_load((dbt_project.DBT_DIR / "schema" / "sources.yml").read_text())
    assert {t["name"] for t in sources["sources"][0]["tables"]} == set(dbt_project.base_tables())


def test_grain_tests_follow_the_files_grain_line():
    """unique_columns on a model lists the columns of its file's `-- grain:` line."""
    schema = yaml.safe_load((dbt_project.DBT_DIR / "schema" / "schema.yml").read_text())
    by_name = {d.name: d for d in view_defs()}
    for m in schema["models"]:
        for t in m.get("data_tests", []):
            if "unique_columns" not in t:
                continue
            cols = t["unique_columns"]["arguments"]["columns"]
            grain = re.search(r"-- grain: one row per \(([^)]*)\)", by_name[m["name"]].text)
            assert grain, m["name"]
            assert cols == [c.strip() for c in grain.group(1).split(",")], m["name"]


def _fake(tmp_path: Path, text: str, name: str = "mart_x") -> ViewDef:
    path = tmp_path / f"{name}.sql"
    path.write_text(text)
    return ViewDef(name, path, text, None, ())


def test_a_cte_named_like_a_relation_is_refused(tmp_path):
    d = _fake(tmp_path, "CREATE OR REPLACE VIEW mart_x AS WITH scores AS (SELECT 1) SELECT * FROM scores")
    with pytest.raises(dbt_project.DbtProjectError, match=r"mart_x\.sql: CTE scores"):
        dbt_project.render_model(d, {"mart_x"}, {"scores"})


def test_a_file_outside_the_layers_is_refused(tmp_path):
    d = _fake(tmp_path, "CREATE OR REPLACE VIEW report_x AS SELECT 1", name="report_x")
    with pytest.raises(dbt_project.DbtProjectError, match="report_x.sql: a view file must start with"):
        dbt_project.render_model(d, set(), set())


def test_comments_mentioning_relations_create_no_lineage(tmp_path):
    d = _fake(tmp_path, "CREATE OR REPLACE VIEW mart_x AS\nSELECT 1 AS one -- not FROM scores {x}\nFROM runs")
    m = dbt_project.render_model(d, {"mart_x"}, {"runs", "scores"})
    assert m.sources == ("runs",) and "source('safeaudit', 'scores')" not in m.sql
