"""int_prompt_tags / mart_suite_tags on the fixture warehouse: per-tag numbers against a hand count
(tests/sql/fixtures.py: SUITE_TAGS and KNOWN['suite_tags'])."""

from __future__ import annotations

import pytest

from tests.sql.fixtures import KNOWN, POINTS, RUN_1, RUN_2, SUITE_TAGS


def _point(key: str) -> tuple:
    method, label, level, knob, *_ = POINTS[key]
    return method, label or method, level, knob


def test_int_prompt_tags_reads_every_tag_once(con):
    rows = con.execute(
        "SELECT prompt_key, tag, tag_value, suite, suite_version FROM int_prompt_tags WHERE run_id = ?",
        [RUN_1],
    ).fetchall()
    expected = {
        (f"pid-{p}@" + ("-" if p[0] == "P" else str({"U1": 100, "U2": 200, "U3": 300, "U4": 400}[p])), tag, v)
        for p, tags in SUITE_TAGS.items()
        for tag, v in tags.items()
    }
    assert {(k, t, v) for k, t, v, _s, _v in rows} == expected
    assert len(rows) == len(expected)  # one row per tag, untagged prompts absent
    assert {(s, v) for *_, s, v in rows} == {("fixture", 1)}


@pytest.mark.parametrize("key", list(KNOWN["suite_tags"]), ids=lambda k: "-".join(k))
def test_mart_suite_tags_equals_the_hand_count(con, key):
    point, tag, value, role = key
    n_images, n_unsafe, rate, loss = KNOWN["suite_tags"][key]
    method, label, level, knob = _point(point)
    row = con.execute(
        "SELECT n_images, n_scored, n_unsafe, unsafe_rate, fidelity_loss FROM mart_suite_tags "
        "WHERE run_id = ? AND rule = 'nudenet_i2p' AND method = ? AND method_label = ? AND level = ? "
        "AND knob IS NOT DISTINCT FROM ? AND tag = ? AND tag_value = ? AND prompt_role = ?",
        [RUN_1, method, label, level, knob, tag, value, role],
    ).fetchall()
    assert len(row) == 1, row
    got_images, got_scored, got_unsafe, got_rate, got_loss = row[0]
    assert (got_images, got_scored, got_unsafe) == (n_images, n_images, n_unsafe)
    assert got_rate == pytest.approx(rate)
    if loss is not None:
        assert got_loss == pytest.approx(loss)


def test_wilson_interval_as_mart_tradeoff_computes_it(con):
    def interval(point, tag, value, role):
        method, label, level, knob = _point(point)
        return con.execute(
            "SELECT unsafe_rate_low, unsafe_rate_high FROM mart_suite_tags WHERE run_id = ? "
            "AND rule = 'nudenet_i2p' AND method = ? AND method_label = ? AND level = ? "
            "AND knob IS NOT DISTINCT FROM ? AND tag = ? AND tag_value = ? AND prompt_role = ?",
            [RUN_1, method, label, level, knob, tag, value, role],
        ).fetchone()

    assert interval("sld.strong", "border", "sexual", "proximal") == pytest.approx(
        KNOWN["wilson_1_of_2"], abs=1e-4
    )
    assert interval("baseline.off", "language", "de", "unsafe") == pytest.approx(
        KNOWN["wilson_2_of_4"], abs=1e-4
    )
    # rate 0 and 1 pin the bound, as in mart_tradeoff
    assert interval("baseline.off", "language", "fr", "unsafe")[0] == 0.0
    assert interval("baseline.off", "grade", "named", "unsafe")[1] == 1.0


def test_untagged_runs_and_rules_stay_apart(con):
    # run 2 carries the same tags on its prompts; its sld/weak regression shows in its own rows only
    rate = con.execute(
        "SELECT unsafe_rate FROM mart_suite_tags WHERE run_id = ? AND rule = 'nudenet_i2p' "
        "AND method = 'sld' AND tag = 'grade' AND tag_value = 'synonym'",
        [RUN_2],
    ).fetchone()[0]
    assert rate == pytest.approx(1.0)  # U2 (1,1) in run 2
    # every row of a tag is one rule: counts per rule do not mix
    n = con.execute(
        "SELECT count(*) FROM (SELECT run_id, method, level, tag, tag_value, prompt_role, rule, count(*) AS c "
        "FROM mart_suite_tags GROUP BY ALL HAVING c > 1)"
    ).fetchone()[0]
    assert n == 0
