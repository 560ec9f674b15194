"""The named-query loader: every file under sql/queries parses as one statement; slots take identifiers only."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.queries import QUERIES_DIR, QueryError, query, render


def test_missing_query_is_one_line_naming_the_file():
    with pytest.raises(QueryError, match=r"no_such_query\.sql: no such named query"):
        query("no_such_query")


def test_render_refuses_a_value_in_an_identifier_slot(tmp_path, monkeypatch):
    with pytest.raises(QueryError, match="takes an SQL identifier"):
        render("audit_summary", table="x; DROP TABLE scores")


def test_every_named_query_is_one_statement_duckdb_can_parse():
    names = sorted(p.relative_to(QUERIES_DIR).with_suffix("").as_posix() for p in QUERIES_DIR.rglob("*.sql"))
    assert names, "sql/queries holds no query"
    con = duckdb.connect()
    for name in names:
        text = query(name)
        # slots are identifiers: give each a placeholder name so the parser sees plain SQL
        text = text.replace("{{", "").replace("}}", "")
        statements = con.extract_statements(text)
        assert len(statements) == 1, f"{name}.sql holds {len(statements)} statements"
