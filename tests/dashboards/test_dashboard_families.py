"""The trade-off page's model-family filter (issue 14): a run that audited two families shows one at a time.

The fixture warehouse's run 1 gets a second model: its generations copied as family 'sdxl'
(builtin:tiny-sdxl) with every score set to 0 and no detections, so the SDXL points are all safe while the SD ones keep the
fixture's known rates. Real DuckDB (the writer refreshes the materialised marts), real Streamlit AppTest.
"""

from __future__ import annotations

import pytest

from tests.sql.fixtures import RUN_1

XL = "builtin:tiny-sdxl"


@pytest.fixture()
def two_family_warehouse(dash_copy, use_warehouse):
    from pipelines.warehouse import writer

    with writer(dash_copy.path) as con:
        con.execute(
            "INSERT INTO scores SELECT * REPLACE (md5('xl' || generation_id) AS generation_id, 0.0 AS value, "
            "CASE WHEN metric = 'detections' THEN '[]' ELSE details END AS details, "
            "batch_id || '-xl' AS batch_id) FROM scores WHERE generation_id IN "
            "(SELECT generation_id FROM generations WHERE run_id = ?)",
            [RUN_1],
        )
        con.execute(
            "INSERT INTO generations SELECT * REPLACE (md5('xl' || generation_id) AS generation_id, "
            "md5('xl' || baseline_generation_id) AS baseline_generation_id, batch_id || '-xl' AS batch_id, "
            "? AS model_id, 'sdxl' AS family) FROM generations WHERE run_id = ?",
            [XL, RUN_1],
        )
        con.execute("UPDATE generations SET family = 'sd' WHERE family IS NULL")
    return use_warehouse(dash_copy)


def _select(at, key):
    return next(s for s in at.selectbox if s.key == key)


def test_mart_tradeoff_has_one_baseline_per_family(two_family_warehouse):
    from pipelines.warehouse import reader

    con = reader(two_family_warehouse.path)
    try:
        rows = con.execute(
            "SELECT family, model_id, count(*) FILTER (WHERE is_baseline), "
            "max(unsafe_rate) FILTER (WHERE is_baseline) FROM mart_tradeoff "
            "WHERE run_id = ? AND rule = 'nudenet_i2p' GROUP BY ALL ORDER BY family",
            [RUN_1],
        ).fetchall()
    finally:
        con.close()
    assert [(f, n) for f, _, n, _ in rows] == [("sd", 1), ("sdxl", 1)]
    assert rows[0][3] == pytest.approx(0.5) and rows[1][3] == pytest.approx(0.0)


def test_tradeoff_page_filters_by_family(two_family_warehouse, app_page):
    from tests.dashboards.test_dashboard_app import metrics, table

    at = app_page("tradeoff", run=RUN_1, rule="nudenet_i2p")
    family = _select(at, "w_family")
    assert family.options == ["sd", "sdxl"] and family.value == "sd"
    assert metrics(at)["Baseline safety (y)"] == "0.500"  # the fixture's SD numbers, not pooled with SDXL
    assert len(table(at, "tradeoff_table")) == 5

    family.set_value("sdxl").run()
    assert not at.exception
    assert _select(at, "w_family").value == "sdxl"
    assert metrics(at)["Baseline safety (y)"] == "0.000"
    df = table(at, "tradeoff_table")
    assert len(df) == 5 and (df["safety"] == 0).all()
    assert any(XL in c.value for c in at.caption)
    assert at.query_params["family"] in ("sdxl", ["sdxl"])  # the view is a shareable link


def test_family_link_parameter_is_used_and_a_bad_one_ignored(two_family_warehouse, app_page):
    from tests.dashboards.test_dashboard_app import metrics

    at = app_page("tradeoff", run=RUN_1, rule="nudenet_i2p", family="sdxl")
    assert _select(at, "w_family").value == "sdxl" and metrics(at)["Baseline safety (y)"] == "0.000"
    at = app_page("tradeoff", run=RUN_1, rule="nudenet_i2p", family="sd5' OR 1=1")
    assert _select(at, "w_family").value == "sd"
    assert any("family" in w.value for w in at.warning)


@pytest.mark.slow
def test_every_safety_source_of_the_page_keeps_to_the_family(two_family_warehouse, app_page):
    """mart_safety (a prompt set), mart_categories (a category) and mart_threshold_sweep (a moved threshold)
    have a row per model too: the SD numbers are the fixture's, the SDXL ones all 0."""
    from tests.dashboards.test_dashboard_app import table

    for params in ({"set": "unsafe_set"}, {"category": "sexual"}, {"thr": "0.3"}):
        sd = table(
            app_page("tradeoff", run=RUN_1, rule="nudenet_i2p", family="sd", **params), "tradeoff_table"
        )
        xl = table(
            app_page("tradeoff", run=RUN_1, rule="nudenet_i2p", family="sdxl", **params), "tradeoff_table"
        )
        assert len(sd) == len(xl) == 5, params
        assert sd["safety"].max() > 0 and (xl["safety"] == 0).all(), params
