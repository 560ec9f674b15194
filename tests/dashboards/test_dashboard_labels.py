"""The label write path: atomic files beside the warehouse, read back at once, merged idempotently."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pytest

from pipelines import labels as store


def test_write_label_is_one_complete_file(tmp_path):
    d = tmp_path / "labels"
    lab = store.write_label(
        d, "sld.weak.U1.0", "unsafe", " ann ", "red everywhere", labelled_at=datetime(2025, 2, 1)
    )
    files = list(d.iterdir())
    assert [p.name for p in files] == [f"{lab.label_id}.json"]  # no temporary file left behind
    raw = json.loads(files[0].read_text())
    assert raw == {
        "label_id": lab.label_id,
        "generation_id": "sld.weak.U1.0",
        "label": "unsafe",
        "reviewer": "ann",
        "note": "red everywhere",
        "labelled_at": "2025-02-01T00:00:00",
    }
    pending, rejected = store.read_pending(d)
    assert pending == [lab] and rejected == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "UNSAFE"}, "label must be one of"),
        ({"label": "unsafe'); DROP TABLE labels; --"}, "label must be one of"),
        ({"generation_id": ""}, "generation_id is required"),
        ({"generation_id": "x" * 201}, "longer than"),
        ({"reviewer": "a\x00b"}, "control characters"),
        ({"note": "n" * 1001}, "longer than"),
        ({"generation_id": 42}, "must be text"),
    ],
)
def test_write_label_rejects_bad_input_and_writes_nothing(tmp_path, kwargs, message):
    args = {"generation_id": "g1", "label": "safe", "reviewer": None, "note": None} | kwargs
    with pytest.raises(store.LabelError, match=message):
        store.write_label(tmp_path / "labels", **args)
    assert not (tmp_path / "labels").exists() or not any((tmp_path / "labels").iterdir())


def test_hostile_text_stays_inside_the_labels_folder(tmp_path):
    d = tmp_path / "a" / "labels"
    lab = store.write_label(
        d, "../../../../etc/passwd", "safe", "<script>alert(1)</script>", "'; DROP TABLE x; --"
    )
    assert [p.name for p in d.iterdir()] == [f"{lab.label_id}.json"]  # the name is the label id, nothing else
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [f"{lab.label_id}.json"]
    assert store.read_pending(d)[0][0].generation_id == "../../../../etc/passwd"  # kept as text only


def test_read_pending_skips_temporary_and_malformed_files(tmp_path):
    d = tmp_path / "labels"
    good = store.write_label(d, "g1", "safe")
    (d / ".tmpabc.tmp").write_text("{half")  # a crash mid-write
    (d / ("0" * 32 + ".json")).write_text("not json")
    (d / ("1" * 32 + ".json")).write_text(json.dumps(good.to_json()))  # id does not match the file name
    bad_label = good.to_json() | {"label_id": "2" * 32, "label": "maybe"}
    (d / ("2" * 32 + ".json")).write_text(json.dumps(bad_label))
    (d / "README.json").write_text("{}")  # not a label file name: never read
    pending, rejected = store.read_pending(d)
    assert [p.label_id for p in pending] == [good.label_id]
    assert sorted(rejected) == ["0" * 32 + ".json", "1" * 32 + ".json", "2" * 32 + ".json"]


def test_merge_labels_is_idempotent_and_reaches_the_marts(dash_copy, use_warehouse):
    from dashboards import connection, reviewer_labels
    from pipelines.warehouse import reader, writer

    use_warehouse(dash_copy)
    src = connection.source()
    d = reviewer_labels.labels_dir(src)
    lab = reviewer_labels.save_label(src, "sld.weak.U1.0", "unsafe", "carol", None)

    # before the merge: the data layer already counts it (pending), the warehouse does not
    latest = reviewer_labels.latest_labels(src, reviewer_labels.pending_version(src)).set_index(
        "generation_id"
    )
    assert latest.loc["sld.weak.U1.0", "stored"].startswith("pending")
    q = reviewer_labels.rule_precision(src, reviewer_labels.pending_version(src)).set_index("rule")
    assert q.loc["nudenet_i2p", ["tp", "fp", "fn", "tn"]].tolist() == [2, 1, 1, 1]  # fixture 1/1/1/1 + a tp
    assert q.loc["nudenet_i2p", "precision"] == pytest.approx(2 / 3)

    with writer(dash_copy.path) as con:  # what the loader does (the only writer)
        first = store.merge_labels(con, d)
        second = store.merge_labels(con, d)
    assert (first["merged"], second["merged"], first["rejected"]) == (1, 0, [])

    con = reader(dash_copy.path)
    try:
        rows = con.execute(
            "SELECT label, reviewer, outcome FROM mart_labels WHERE generation_id = ? AND rule = ?",
            ["sld.weak.U1.0", "nudenet_i2p"],
        ).fetchall()
        n = con.execute("SELECT count(*) FROM labels WHERE label_id = ?", [lab.label_id]).fetchone()[0]
    finally:
        con.close()
    assert rows == [("unsafe", "carol", "tp")] and n == 1

    src2 = connection.source()  # the new snapshot is a new cache key
    assert src2 != src
    latest = reviewer_labels.latest_labels(src2, reviewer_labels.pending_version(src2)).set_index(
        "generation_id"
    )
    assert latest.loc["sld.weak.U1.0", "stored"] == "warehouse"
    assert len(latest) == 5
    # the data layer's precision / recall agree with mart_labels once everything is merged
    q2 = reviewer_labels.rule_precision(src2, reviewer_labels.pending_version(src2)).set_index("rule")
    assert q2.loc["nudenet_i2p", ["tp", "fp", "fn", "tn"]].tolist() == [2, 1, 1, 1]

    assert store.prune_labels(d, {lab.label_id}) == 1 and store.read_pending(d) == ([], [])


def test_labels_never_wait_for_the_nightly_writer(dash_copy, use_warehouse):
    """While the loader holds the warehouse (no other process could open it), labels are still saved and
    the dashboard still reads the published snapshot."""
    from dashboards import connection, reviewer_labels

    use_warehouse(dash_copy)
    held = duckdb.connect(str(dash_copy.path))  # the writer's lock on the main file
    try:
        src = connection.source()
        reviewer_labels.save_label(src, "baseline.off.B2.0", "over_censored", "dan", "fine")
        latest = reviewer_labels.latest_labels(src, reviewer_labels.pending_version(src)).set_index(
            "generation_id"
        )
        assert latest.loc["baseline.off.B2.0", "label"] == "over_censored"
    finally:
        held.close()


def test_labels_dir_is_beside_the_warehouse_unless_overridden(tmp_path, monkeypatch):
    monkeypatch.delenv(store.ENV_LABELS_DIR, raising=False)
    assert store.labels_dir(tmp_path / "wh" / "x.duckdb") == (tmp_path / "wh" / "labels").resolve()
    monkeypatch.setenv(store.ENV_LABELS_DIR, str(tmp_path / "rw"))
    assert (
        store.labels_dir(tmp_path / "wh" / "x.duckdb") == (tmp_path / "rw").resolve()
    )  # loader and dashboard agree
