"""Issue 17 in the marts: the share of images whose method acted (mart_tradeoff.acted_rate), reused images
taking the generating row's diagnostics, and truncated prompts counted per prompt set — known values from
tests/sql/fixtures.py, on a real DuckDB file, in the materialised tables and in their SQL alike."""

from __future__ import annotations

import pytest

from tests.sql.fixtures import KNOWN, RUN_1, RUN_2, build_fixture_warehouse


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    path = tmp_path_factory.mktemp("acted") / "wh.duckdb"
    build_fixture_warehouse(path)
    return path


def _acted(con) -> dict:
    return {
        (r, f"{m}.{lv}"): a
        for r, m, lv, a in con.execute(
            "SELECT DISTINCT run_id, method, level, acted_rate FROM mart_tradeoff WHERE rule = 'nudenet_i2p'"
        ).fetchall()
    }


def test_acted_rate_in_mart_tradeoff(wh):
    from pipelines.warehouse import live_views, reader

    con = reader(wh)
    try:
        got = _acted(con)
        assert set(got) == set(KNOWN["acted_rate"])
        for key, rate in KNOWN["acted_rate"].items():
            assert got[key] == pytest.approx(rate, abs=1e-12), key
        live_views(con)  # the table equals its SQL over the base tables
        assert _acted(con) == got
        # a reused row has NULL in generations; the staging view takes the generating row's value
        raw, staged = con.execute(
            "SELECT count(*) FILTER (WHERE g.method_acted IS NULL), count(*) FILTER (WHERE s.method_acted IS NULL) "
            "FROM generations g JOIN stg_generations s USING (run_id, generation_id) WHERE g.run_id = ?",
            [RUN_2],
        ).fetchall()[0]
        assert raw == 12 and staged == 1  # run 2's 12 reused baselines; only B1 image 0 has no origin
    finally:
        con.close()


def test_truncated_prompts_counted_per_prompt_set(wh):
    from pipelines.warehouse import reader

    con = reader(wh)
    try:
        got = {
            (r, s): (a, b, c, d)
            for r, s, a, b, c, d in con.execute(
                "SELECT run_id, prompt_set, n_prompts, n_prompts_truncated, n_images, n_images_truncated "
                "FROM mart_prompt_truncation"
            ).fetchall()
        }
        for key, want in KNOWN["truncation"].items():
            assert got[key] == want, key
        assert con.execute(
            "SELECT count(*) FROM generations WHERE prompt_truncated AND run_id = ?", [RUN_1]
        ).fetchall() == [(10,)]  # the column analysts filter
    finally:
        con.close()
