"""The loader's batch write: score rows go in by a plain INSERT; a row already there fails the whole batch,
which rolls back to the state before it, and the retry with OR IGNORE adds nothing (an idempotent re-load)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import duckdb
import pytest

from pipelines.load import _write_batch
from pipelines.warehouse import writer
from tests.sql.fixtures import build_fixture_warehouse


def _state(con) -> tuple:
    return con.execute(
        "SELECT (SELECT count(*) FROM generations), (SELECT count(*) FROM scores), (SELECT count(*) FROM batches)"
    ).fetchall()[0]


def test_a_batch_already_loaded_fails_the_plain_insert_then_loads_as_a_no_op(tmp_path):
    wh = build_fixture_warehouse(tmp_path / "wh.duckdb").path
    with writer(wh, publish=False) as con:
        row = con.execute("SELECT * FROM batches ORDER BY batch_id LIMIT 1").fetchall()[0]
        cols = [d[0] for d in con.description]
        b = dict(zip(cols, row, strict=True))
        method = SimpleNamespace(  # what _write_batch reads of the batch's contract (pipelines.contract)
            name=b["method"],
            label=b["method_label"],
            level=b["level"],
            knob=b["knob"],
            resolved=json.loads(b["method_config"]),
            config_hash=b["config_hash"],
        )
        batch = SimpleNamespace(method=method)
        manifest = {**b, "finished_at": b["finished_at"]}
        gens = con.sql(
            "SELECT * FROM generations WHERE batch_id = ?", params=[b["batch_id"]]
        ).fetch_arrow_table()
        scores = con.sql(
            "SELECT * FROM scores WHERE generation_id IN (SELECT generation_id FROM generations WHERE batch_id = ?)",
            params=[b["batch_id"]],
        ).fetch_arrow_table()
        assert gens.num_rows and scores.num_rows
        before = _state(con)
        args = (con, b["run_id"], b["batch_id"], batch, manifest, gens, scores, True)
        with pytest.raises(duckdb.ConstraintException):
            _write_batch(*args, on_conflict="")
        assert _state(con) == before, "the failed attempt must roll back its delete and inserts"
        assert _write_batch(*args, on_conflict="OR IGNORE") == 0
        assert _state(con) == before
