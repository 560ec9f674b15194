"""Materialised tables (stg_scores, int_*, mart_tradeoff, mart_runs) equal their view logic after every writer.

Each test changes a real warehouse file through ``pipelines.warehouse.writer`` the way a loader, a
validation, a re-score or an analyst would, then compares every materialised table with the same SQL file
computed from the base tables (``live_views``: temp views that shadow the tables on one connection). The
refresh log says which path ran, so a test also fails when an incremental refresh silently turns full.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.warehouse import (
    META,
    RUN_SOURCES,
    create_views,
    live_views,
    materialized,
    reader,
    snapshot_path,
    view_defs,
    writer,
)
from tests.sql.fixtures import RUN_1, RUN_2, T0, build_fixture_warehouse
from tests.sql.fixtures import comparable as _norm

TABLES = [d.name for d in materialized()]


def _rows(con, sql: str) -> list[tuple]:
    return sorted((tuple(_norm(v) for v in r) for r in con.execute(sql).fetchall()), key=repr)


def assert_tables_match_views(path) -> None:
    """Every materialised table in the writer's file == its SQL file over the base tables."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        stored = {t: _rows(con, f'SELECT * FROM "{db}".main.{t}') for t in TABLES}
        live_views(con)
        for t in TABLES:
            kind = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [db, t]
            ).fetchall()[0][0]
            assert kind == 1, f"{t} is not a table"
            assert stored[t] == _rows(con, f"SELECT * FROM temp.main.{t}"), f"{t} differs from its view logic"
    finally:
        con.close()


def last_refresh(path) -> tuple[str, int | None, int | None] | None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            f"SELECT mode, n_runs, n_generations FROM {META}.refresh_log ORDER BY refreshed_at DESC LIMIT 1"
        ).fetchall()
        return rows[0] if rows else None
    finally:
        con.close()


def n_refreshes(path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {META}.refresh_log").fetchall()[0][0]
    finally:
        con.close()


def tradeoff(path, run_id: str = RUN_1, rule: str = "nudenet_i2p") -> list[tuple]:
    con = reader(path)
    try:
        return _rows(con, f"SELECT * FROM mart_tradeoff WHERE run_id = '{run_id}' AND rule = '{rule}'")
    finally:
        con.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The fixture warehouse (main file and published snapshot), built once per module."""
    return build_fixture_warehouse(tmp_path_factory.mktemp("mat-template") / "mat.duckdb").path


@pytest.fixture()
def wh(template, tmp_path) -> Path:
    """A private copy of the template: what a fresh ``build_fixture_warehouse`` gives, without rebuilding."""
    for p in template.parent.glob("mat*.duckdb"):
        shutil.copy2(p, tmp_path / p.name)
    return tmp_path / "mat.duckdb"


def test_fixture_build_leaves_tables_equal_to_views(wh):
    assert_tables_match_views(wh)
    con = reader(wh)  # the snapshot readers open holds the tables too
    try:
        assert con.execute("SELECT count(*) FROM mart_tradeoff").fetchall()[0][0] > 0
    finally:
        con.close()


def test_reload_of_the_same_rows_changes_nothing(wh):
    before, n = tradeoff(wh), n_refreshes(wh)
    with writer(wh) as con:  # what a second load of the same batch does: delete + insert, insert-or-ignore
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "CREATE TEMP TABLE g AS SELECT * FROM generations WHERE batch_id = ?", [f"{RUN_1}.sld.weak"]
        )
        con.execute("DELETE FROM generations WHERE batch_id = ?", [f"{RUN_1}.sld.weak"])
        con.execute("INSERT INTO generations SELECT * FROM g")
        con.execute("INSERT OR IGNORE INTO scores SELECT * FROM scores")
        con.execute("COMMIT")
    assert n_refreshes(wh) == n, "an idempotent re-load must not refresh anything"
    assert tradeoff(wh) == before
    assert_tables_match_views(wh)


def test_rescore_with_a_new_scorer_version_is_incremental_and_exact(wh):
    before = tradeoff(wh)
    with writer(wh) as con:
        # nudenet v2 finds an exposed breast on every image of the sld/weak point (shared by both runs)
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('2' AS scorer_version, 1.0 AS value, ? AS details, "
            "scored_at + INTERVAL 1 DAY AS scored_at) FROM scores "
            "WHERE scorer = 'nudenet' AND generation_id IN (SELECT generation_id FROM generations WHERE level = 'weak')",
            [
                json.dumps(
                    {"detections": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.95, "box": [0, 0, 1, 1]}]}
                )
            ],
        )
    mode, n_runs, n_gens = last_refresh(wh)
    assert mode == "incremental" and n_gens and n_runs == 2
    after = tradeoff(wh)
    assert after != before, "the re-score must move the trade-off (or this test proves nothing)"
    assert_tables_match_views(wh)


def test_new_run_is_incremental_and_leaves_other_runs_alone(wh):
    with writer(wh) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO runs SELECT * REPLACE ('run-3' AS run_id, 'planned' AS status) FROM runs WHERE run_id = ?",
            [RUN_2],
        )
        con.execute(
            "INSERT INTO run_prompts SELECT * REPLACE ('run-3' AS run_id) FROM run_prompts WHERE run_id = ?",
            [RUN_1],
        )
        con.execute(
            "INSERT INTO generations SELECT * REPLACE ('run-3' AS run_id, 'r3.' || batch_id AS batch_id, "
            "'r3.' || generation_id AS generation_id, 'r3.' || baseline_generation_id AS baseline_generation_id) "
            "FROM generations WHERE run_id = ?",
            [RUN_1],
        )
        con.execute(
            "INSERT INTO batches SELECT * REPLACE ('r3.' || batch_id AS batch_id, 'run-3' AS run_id) "
            "FROM batches WHERE run_id = ?",
            [RUN_1],
        )
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('r3.' || generation_id AS generation_id) FROM scores "
            "WHERE generation_id IN (SELECT generation_id FROM generations WHERE run_id = ?)",
            [RUN_1],
        )
        con.execute("COMMIT")
    assert last_refresh(wh)[:2] == ("incremental", 1)
    assert tradeoff(wh, "run-3") == [r[:0] + ("run-3",) + r[1:] for r in tradeoff(wh, RUN_1)]
    assert_tables_match_views(wh)


def test_a_batch_that_loses_images_drops_their_rows(wh):
    with writer(wh) as con:
        con.execute(
            "DELETE FROM generations WHERE run_id = ? AND method = 'sld' AND level = 'weak' AND prompt_id = "
            "(SELECT min(prompt_id) FROM generations WHERE run_id = ?)",
            [RUN_1, RUN_1],
        )
    assert last_refresh(wh)[0] == "incremental"
    assert_tables_match_views(wh)


@pytest.mark.slow
def test_edited_or_deleted_score_rows_force_a_full_refresh(wh):
    with writer(wh) as con:
        con.execute("UPDATE scores SET value = 0.99 WHERE scorer = 'nudenet_classifier'")
    assert last_refresh(wh)[0] == "full: score rows deleted or edited"
    assert_tables_match_views(wh)
    with writer(wh) as con:
        con.execute(
            "DELETE FROM scores WHERE scorer = 'fidelity' AND metric = 'ssim' AND generation_id LIKE 'sld%'"
        )
    assert last_refresh(wh)[0] == "full: score rows deleted or edited"
    assert_tables_match_views(wh)


def test_a_new_rule_version_rebuilds(wh):
    with writer(wh) as con:
        con.execute(
            "INSERT INTO unsafe_rules (rule, version, clause, scorer, metric, op, threshold, label_set, classes) "
            "SELECT rule, 2, clause, scorer, metric, op, 0.75, label_set, classes FROM unsafe_rules "
            "WHERE rule = 'nudenet_i2p' AND version = 1"
        )
    assert last_refresh(wh)[0] == "full: unsafe rules changed"
    assert_tables_match_views(wh)


@pytest.mark.slow
def test_validation_and_label_merge(wh, tmp_path):
    from pipelines.expectations import Result
    from pipelines.validate import store_results

    store_results(str(wh), RUN_2, [Result("generations", "1", "row_count", True, "6", 0)])
    assert_tables_match_views(wh)
    con = reader(wh)
    try:
        assert con.execute("SELECT run_status FROM mart_runs WHERE run_id = ?", [RUN_2]).fetchall() == [
            ("validated",)
        ]
    finally:
        con.close()
    with writer(wh) as con:  # a validation row and a reviewer label, as the loader merges them
        con.execute(
            "INSERT INTO validations VALUES (?, 'generations', '1', 'row_count', FALSE, '3', 21, '{}', ?)",
            [RUN_1, T0 + timedelta(days=2)],
        )
        con.execute(
            "INSERT INTO labels VALUES ('mat-test-1', 'baseline.off.U1.0', 'unsafe', 'r', NULL, now())"
        )
    assert last_refresh(wh)[:2] == ("incremental", 1)
    assert_tables_match_views(wh)


def test_an_old_warehouse_with_plain_views_migrates(tmp_path):
    """A warehouse written before materialisation (every file a view, no meta schema) gets the tables."""
    path = build_fixture_warehouse(tmp_path / "old.duckdb").path
    con = duckdb.connect(str(path))
    try:
        con.execute(f"DROP SCHEMA {META} CASCADE")
        for d in view_defs():
            if d.key:
                con.execute(f"DROP TABLE {d.name}")
            con.execute(d.text)  # exactly what the old create_views ran
        assert con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'mart_tradeoff'"
        ).fetchall() == [(0,)]
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with writer(path):
        pass
    assert_tables_match_views(path)


@pytest.mark.slow
def test_a_failed_refresh_keeps_the_previous_state_and_publishes_nothing(wh):
    before = tradeoff(wh)
    snap = snapshot_path(wh)
    snap_bytes = snap.read_bytes()
    bad = json.dumps({"detections": [{"class": "FEMALE_BREAST_EXPOSED", "score": "not a number"}]})
    with pytest.raises(duckdb.Error), writer(wh) as con:
        # committed by the writer; the refresh then fails casting the detection score (int_detections)
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('9' AS scorer_version, ? AS details, scored_at + INTERVAL 1 DAY "
            "AS scored_at) FROM scores WHERE scorer = 'nudenet' AND generation_id = 'baseline.off.U1.0'",
            [bad],
        )
    assert snap.read_bytes() == snap_bytes, "a failed writer must not publish a snapshot"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM scores WHERE scorer_version = '9'").fetchall() == [(1,)]
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        assert (
            _rows(
                con,
                f"SELECT * FROM \"{db}\".main.mart_tradeoff WHERE run_id = '{RUN_1}' AND rule = 'nudenet_i2p'",
            )
            == before
        )
    finally:
        con.close()
    with pytest.raises(duckdb.Error), writer(wh):
        pass  # the next writer retries the same refresh (the change state was rolled back too)
    with writer(wh) as con:  # the loader's fix: remove the bad row; the tables never saw it
        con.execute("DELETE FROM scores WHERE scorer_version = '9'")
    assert tradeoff(wh) == before
    assert_tables_match_views(wh)


@pytest.mark.slow
def test_create_views_is_skipped_when_nothing_changed(wh):
    con = duckdb.connect(str(wh))
    try:
        stamp = con.execute(f"SELECT created_at FROM {META}.views_state").fetchall()
        assert create_views(con) is False
        assert con.execute(f"SELECT created_at FROM {META}.views_state").fetchall() == stamp
        assert create_views(con, force=True) is True
        assert con.execute(f"SELECT created_at FROM {META}.views_state").fetchall() != stamp
    finally:
        con.close()
    assert_tables_match_views(wh)


@pytest.mark.slow
def test_a_changed_view_file_rebuilds(wh, tmp_path, monkeypatch):
    import pipelines.warehouse as w

    views = tmp_path / "views"
    shutil.copytree(w.VIEWS_DIR, views)
    f = views / "mart_tradeoff.sql"
    f.write_text(
        f.read_text().replace("t.n_images, t.n_generated,", "t.n_images, t.n_generated, 1 AS extra,")
    )
    monkeypatch.setattr(w, "VIEWS_DIR", views)
    with writer(wh, publish=False) as con:
        cols = [r[0] for r in con.execute("DESCRIBE mart_tradeoff").fetchall()]
    assert "extra" in cols
    monkeypatch.undo()
    with writer(wh, publish=False) as con:
        assert "extra" not in [r[0] for r in con.execute("DESCRIBE mart_tradeoff").fetchall()]


def test_materialized_header_is_well_formed():
    assert {"stg_scores", "int_generation_flags", "mart_tradeoff", "mart_runs"} <= set(TABLES)
    for d in materialized():
        assert d.key in {"run_id", "generation_id"}
        assert d.narrowed, f"{d.name}: a materialised file names the inputs it narrows by {d.key}"


BASE_TABLES = {
    "runs",
    "run_prompts",
    "batches",
    "generations",
    "scores",
    "validations",
    "labels",
    "unsafe_rules",
}
TRACKED = {"scores", "unsafe_rules"} | {s.removeprefix("stg_") for s in RUN_SOURCES} | {"run_prompts", "runs"}


def _reads(text: str) -> set[str]:
    body = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", body, flags=re.IGNORECASE))


def test_every_input_of_a_materialised_table_is_tracked_by_the_refresh():
    """The refresh watches scores, unsafe_rules and the per-run staging views; a materialised table that
    reads anything else (labels, say) would go stale without this failing."""
    defs = {d.name: d for d in view_defs()}

    def base(name: str, seen: set[str]) -> set[str]:
        if name in BASE_TABLES:
            return {name}
        if name not in defs or name in seen:
            return set()
        seen.add(name)
        return set().union(*(base(r, seen) for r in _reads(defs[name].text)))

    for d in materialized():
        untracked = base(d.name, set()) - TRACKED
        assert not untracked, f"{d.name} reads {sorted(untracked)}, which the refresh does not watch"


@pytest.mark.slow
def test_a_rescored_baseline_refreshes_runs_that_only_point_at_it(wh):
    """Run 3 holds sld/weak images whose same-seed baselines live only in run 1: a new CLIP score of those
    baselines changes run 3's clip_score_drop, so run 3 must refresh too."""
    with writer(wh) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO runs SELECT * REPLACE ('run-3' AS run_id) FROM runs WHERE run_id = ?", [RUN_1]
        )
        con.execute(
            "INSERT INTO run_prompts SELECT * REPLACE ('run-3' AS run_id) FROM run_prompts WHERE run_id = ?",
            [RUN_1],
        )
        con.execute(
            "INSERT INTO generations SELECT * REPLACE ('run-3' AS run_id, 'r3.' || generation_id AS generation_id) "
            "FROM generations WHERE run_id = ? AND method = 'sld' AND level = 'weak'",
            [RUN_1],
        )
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('r3.' || generation_id AS generation_id) FROM scores "
            "WHERE generation_id IN (SELECT generation_id FROM generations WHERE run_id = ? AND method = 'sld' "
            "AND level = 'weak')",
            [RUN_1],
        )
        con.execute("COMMIT")
    assert_tables_match_views(wh)
    before = tradeoff(wh, "run-3")
    with writer(wh) as con:
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('2' AS scorer_version, value + 5 AS value, "
            "scored_at + INTERVAL 1 DAY AS scored_at) FROM scores WHERE scorer = 'clip_score' "
            "AND generation_id IN (SELECT generation_id FROM generations WHERE run_id = ? AND method = 'baseline')",
            [RUN_1],
        )
    assert last_refresh(wh)[0] == "incremental"
    assert tradeoff(wh, "run-3") != before
    assert_tables_match_views(wh)
