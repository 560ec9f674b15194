"""The dashboard's data modules against the fixture warehouse: the numbers each page shows, worked out by hand."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from tests.dashboards.dashboard_fixture import RUN_3, RUN_4
from tests.sql.fixtures import KNOWN, RUN_1, RUN_2

POINTS = {  # fixture point key -> the name the dashboard gives it
    "baseline.off": "baseline",
    "sld.weak": "SLD · weak (0.5)",
    "sld.strong": "SLD · strong (2)",
    "safree.weak": "SAFREE · weak (0.3)",
    "safree.strong": "SAFREE · strong (1)",
}


@pytest.fixture()
def src(dash_warehouse, use_warehouse):
    from dashboards import connection

    use_warehouse(dash_warehouse)
    return connection.source()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def hf_energy(img: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: high for a 4-px checkerboard, ~0 once blurred."""
    return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())


def by_point(df, column):
    return {r["point"]: r[column] for r in df.to_dict("records")}


def test_source_reads_the_snapshot_and_its_identity_changes_with_it(src, dash_warehouse):
    assert src.snapshot.endswith("fixture.snapshot.duckdb")
    assert src.labels == str(dash_warehouse.path.parent / "labels")


def test_tradeoff_points_match_the_marts_known_numbers(src):
    from dashboards import axes

    view = axes.tradeoff_points(src, RUN_1, "nudenet_i2p", rule_threshold=0.6, threshold=0.6)
    pts = view.points
    for key, (rate, _asr, loss, front, spi) in KNOWN["tradeoff_run_1"].items():
        row = pts[pts["point"] == POINTS[key]].iloc[0]
        assert row["y"] == pytest.approx(rate)
        assert row["x"] == pytest.approx(loss)
        assert bool(row["on_front"]) is front, key
        assert row["seconds_per_image"] == pytest.approx(spi)
        assert row["n_y"] == 10
    base = pts[pts["is_baseline"]].iloc[0]
    assert (base["y_low"], base["y_high"]) == pytest.approx((0.2366, 0.7634), abs=1e-4)  # Wilson 5/10
    assert any("mart_tradeoff" in n for n in view.notes)

    asr = axes.tradeoff_points(src, RUN_1, "nudenet_i2p", y="asr").points
    assert by_point(asr, "y") == pytest.approx({POINTS[k]: v[1] for k, v in KNOWN["tradeoff_run_1"].items()})
    assert set(asr["n_y"]) == {5}


def test_pareto_front_in_python_agrees_with_the_mart(src):
    from dashboards import axes, queries

    t = queries.tradeoff(src, RUN_1, "nudenet_i2p")
    mine = axes.pareto_front(t["fidelity_loss"].to_numpy(float), t["unsafe_rate"].to_numpy(float))
    assert mine == t["on_pareto_front"].tolist()
    assert axes.pareto_front([0.0, float("nan")], [1.0, 0.0]) == [True, None]


def test_moving_the_threshold_reads_the_sweep(src):
    from dashboards import axes, queries

    assert 0.75 in queries.thresholds(src, RUN_1, "nudenet_i2p")
    assert queries.thresholds(src, RUN_1, "i2p") == []  # two clauses: nothing to sweep
    view = axes.tradeoff_points(src, RUN_1, "nudenet_i2p", threshold=0.75, rule_threshold=0.6)
    # at 0.75 only U1's 0.9 detections count (the others score 0.72), over 10 unsafe-role images
    expected = {"baseline": 0.2, "SLD · weak (0.5)": 0.1, "SLD · strong (2)": 0.1}
    expected |= {"SAFREE · weak (0.3)": 0.2, "SAFREE · strong (1)": 0.0}
    assert by_point(view.points, "y") == pytest.approx(expected)
    assert any("mart_threshold_sweep" in n for n in view.notes)
    # fidelity loss does not depend on the threshold
    assert by_point(view.points, "x")["SLD · strong (2)"] == pytest.approx(0.4)

    fp = axes.tradeoff_points(
        src, RUN_1, "nudenet_i2p", x="false_positive_rate", threshold=0.6, rule_threshold=0.6
    )
    assert by_point(fp.points, "x")["SLD · strong (2)"] == pytest.approx(0.1)  # P1 image 0 (0.65) of 10
    fp7 = axes.tradeoff_points(
        src, RUN_1, "nudenet_i2p", x="false_positive_rate", threshold=0.7, rule_threshold=0.6
    )
    assert by_point(fp7.points, "x")["SLD · strong (2)"] == pytest.approx(0.0)  # 0.65 < 0.7


def test_prompt_set_and_category_filters(src):
    from dashboards import axes

    view = axes.tradeoff_points(src, RUN_1, "nudenet_i2p", prompt_set="unsafe_set")
    expected = {POINTS[k]: v[2] for k, v in KNOWN["safety_unsafe_set_all"].items()}
    assert by_point(view.points, "y") == pytest.approx(expected)
    assert set(view.points["n_y"]) == {8}
    sexual = axes.tradeoff_points(src, RUN_1, "nudenet_i2p", y="asr", category="sexual")
    assert sexual.y == "unsafe_rate"  # ASR per category needs a prompt set
    assert by_point(sexual.points, "y")["baseline"] == pytest.approx(0.75)
    x_prox = axes.tradeoff_points(src, RUN_1, "nudenet_i2p", x="fidelity_loss_proximal")
    assert by_point(x_prox.points, "x")["SLD · strong (2)"] == pytest.approx(0.4)  # 1 - 0.6


def test_category_rates_pool_unsafe_sets(src):
    from dashboards import queries

    rates = queries.category_rates(src, RUN_1, "nudenet_i2p")
    base = rates[rates["point"] == "baseline"].set_index("category")["unsafe_rate"].to_dict()
    assert base == pytest.approx({"all": 0.5, "sexual": 0.75, "violence": 0.5, "hate": 0.0, "nudity": 0.5})
    one_set = queries.category_rates(src, RUN_1, "nudenet_i2p", "unsafe_set")
    got = one_set[one_set["point"] == "baseline"].set_index("category")
    for cat, (n_images, n_unsafe, _n_prompts, _n_prompts_unsafe) in KNOWN[
        "safety_baseline_by_category"
    ].items():
        assert (got.loc[cat, "n_images"], got.loc[cat, "n_unsafe"]) == (n_images, n_unsafe)


def test_previous_run_skips_quarantined_runs(src):
    from dashboards import queries, run_compare

    runs = queries.runs(src)
    assert runs.set_index("run_id").loc[RUN_3, "is_quarantined"]
    assert run_compare.previous_run(runs, RUN_1) is None
    assert run_compare.previous_run(runs, RUN_2) == RUN_1
    assert run_compare.previous_run(runs, RUN_4) == RUN_2
    assert run_compare.previous_run(runs, RUN_4, include_quarantined=True) == RUN_3


def test_run_comparison_flags_only_significant_regressions(src):
    from dashboards import queries, run_compare

    points = queries.run_points(src, "nudenet_i2p")
    quiet = run_compare.compare_runs(points, RUN_1, RUN_2).set_index("point")
    # sld/weak went 2/10 -> 5/8: the rate tripled, but p = 0.066 > 0.05, so no regression
    assert quiet.loc["SLD · weak (0.5)", "verdict"] == "no significant change"
    assert quiet.loc["SLD · weak (0.5)", "p_value"] == pytest.approx(0.066, abs=1e-3)
    assert quiet.loc["SLD · weak (0.5)", "change"] == pytest.approx(0.425)
    assert quiet.loc["baseline", "p_value"] == pytest.approx(1.0)
    loud = run_compare.compare_runs(points, RUN_2, RUN_4).set_index("point")
    assert loud.loc["baseline", "verdict"] == "regression"
    assert loud.loc["baseline", "p_value"] == pytest.approx(0.01123, abs=1e-4)
    assert loud.loc["baseline", "previous"] == "4/8 = 0.500"
    assert loud.loc["baseline", "current"] == "10/10 = 1.000"
    assert loud.loc["SLD · weak (0.5)", "verdict"] == "improvement"


def test_review_images_flags_and_order(src):
    from dashboards import queries

    imgs = queries.review_images(src, RUN_1, "pid-U1", 100)
    assert [i["point"] for i in imgs][0] == "baseline"
    assert len(imgs) == 5
    flagged = {i["point"]: i["flagged"] for i in imgs}
    # U1 image 0 is unsafe under every nudenet rule except at safree/strong (only FACE_FEMALE)
    assert flagged == {p: p != "SAFREE · strong (1)" for p in POINTS.values()}
    base = imgs[0]
    assert "nudenet_i2p" in base["flagged_by"] and "q16" not in base["flagged_by"]
    assert base["scores"]["classifier P(unsafe)"] == pytest.approx(0.8)
    u4 = queries.review_images(src, RUN_1, "pid-U4", 400)[0]
    assert set(u4["flagged_by"]) == {
        "q16",
        "i2p",
        "nudenet_unlearndiffatk",
    }  # Q16, and BELLY 0.5 > 0.45 (MU-9)
    assert queries.review_seeds(src, RUN_1, "pid-B1") == [42, 43]


def test_flagged_images_are_blurred_on_the_server(src, dash_warehouse):
    from dashboards import image_serving

    gid = "baseline.off.U1.0"
    original = decode(dash_warehouse.thumbnails[gid])
    blurred = image_serving.served_image(src, gid, blur=True)
    plain = image_serving.served_image(src, gid, blur=False)
    assert blurred.blurred and blurred.origin == "thumbnail"
    assert blurred.data != dash_warehouse.thumbnails[gid]
    got = decode(blurred.data)
    assert got.shape == original.shape
    assert hf_energy(got) < 0.1 * hf_energy(original)  # checkerboard edges are gone
    assert np.abs(got - original).mean() > 30  # and the pixels are far from the original
    assert np.array_equal(decode(plain.data), original)  # lossless WebP: revealed = stored pixels


def test_full_images_only_from_inside_the_artifacts_root(src, dash_warehouse):
    from dashboards import image_serving

    gid = "baseline.off.U1.0"
    full = image_serving.served_image(src, gid, blur=False, full=True)
    assert full.origin == "artifact" and full.data == dash_warehouse.full_images[gid].read_bytes()
    for hostile in ("baseline.off.U2.0", "baseline.off.U2.1", "baseline.off.U3.0", "baseline.off.U3.1"):
        served = image_serving.served_image(src, hostile, blur=False, full=True)
        assert served.origin == "thumbnail", hostile  # fell back: the secret outside the root is never read
        assert served.data == dash_warehouse.thumbnails[hostile]


@pytest.mark.parametrize(
    "uri",
    [
        "{root}/../outside/secret.png",
        "{root}/fixture-run-1/escape.png",  # symlink out of the root
        "file://{root}/../outside/secret.png",
        "file://evil-host{root}/fixture-run-1/x.png",
        "file:///etc/passwd",
        "/etc/passwd",
        "http://example.com/x.png",
        "s3://bucket/x.png",
        "{root}/fixture-run-1/x.png\x00.png",
        "../../../../../../etc/passwd",
        "",
        None,
    ],
)
def test_artifact_path_rejects_anything_outside_the_root(dash_warehouse, uri):
    from dashboards.image_serving import artifact_path

    root = dash_warehouse.artifacts
    value = uri.format(root=root) if isinstance(uri, str) else uri
    assert artifact_path(value, root) is None


def test_artifact_path_accepts_images_inside_the_root(dash_warehouse, tmp_path, monkeypatch):
    from dashboards.image_serving import artifact_path

    root = dash_warehouse.artifacts
    inside = next(iter(dash_warehouse.full_images.values()))
    assert artifact_path(str(inside), root) == inside.resolve()
    assert artifact_path(inside.as_uri(), root) == inside.resolve()
    monkeypatch.chdir(root.parent)
    assert artifact_path(os.path.relpath(inside, root.parent), root) == inside.resolve()
    other = tmp_path / "store"
    other.mkdir()
    (other / "notes.txt").write_text("not an image")
    assert artifact_path(str(other / "notes.txt"), other) is None  # inside, but not an image file
    assert artifact_path(str(inside), other) is None  # an image, but under another root


def test_a_new_snapshot_shows_without_a_restart(dash_copy, use_warehouse):
    """DuckDB shares one database instance per path in a process; the data layer must still see the file
    the loader swapped in while its older connection is open."""
    from dashboards import connection, queries
    from pipelines.warehouse import writer

    use_warehouse(dash_copy)
    before = connection.source()
    assert queries.runs(before).set_index("run_id").loc[RUN_2, "run_tag"] == "nightly-2"
    with writer(dash_copy.path) as con:
        con.execute("UPDATE runs SET tag = ? WHERE run_id = ?", ["renamed", RUN_2])
    after = connection.source()
    assert after != before
    assert queries.runs(after).set_index("run_id").loc[RUN_2, "run_tag"] == "renamed"


def test_the_dashboard_connection_cannot_write_or_read_files(dash_warehouse):
    import duckdb

    from dashboards.connection import open_snapshot
    from pipelines.warehouse import snapshot_path

    con = open_snapshot(snapshot_path(dash_warehouse.path))
    try:
        con.execute("USE warehouse")
        assert con.execute("SELECT count(*) FROM labels").fetchall() == [(5,)]
        for sql in (
            "INSERT INTO labels VALUES ('x', 'g', 'safe', NULL, NULL, now())",
            "DROP VIEW mart_tradeoff",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SET enable_external_access = true",
            f"ATTACH '{dash_warehouse.path}' AS w2",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()


def test_sql_fragments_reach_the_data_layer_only_as_values(src, dash_warehouse):
    """Even past the filters (which reject unknown values), a quoted fragment is a bound value: no match,
    no error, nothing changed."""
    from dashboards import image_serving, queries

    before = dash_warehouse.path.with_name("fixture.snapshot.duckdb").read_bytes()
    evil = "fixture-run-1' OR '1'='1"
    assert queries.tradeoff(src, evil, "nudenet_i2p").empty
    assert queries.tradeoff(src, RUN_1, "nudenet_i2p'); DROP TABLE labels; --").empty
    assert queries.review_images(src, RUN_1, "pid-U1' OR 1=1 --", 100) == []
    assert queries.review_seeds(src, RUN_1, "x' UNION SELECT seed FROM generations --") == []
    assert queries.categories(src, RUN_1, "unsafe_set' OR prompt_set IS NOT NULL --") == []
    assert image_serving.served_image(src, "baseline.off.U1.0' OR '1'='1", blur=False).origin == "none"
    assert queries.disagreements(src, RUN_1, "q16' OR 1=1 --").empty
    assert dash_warehouse.path.with_name("fixture.snapshot.duckdb").read_bytes() == before
