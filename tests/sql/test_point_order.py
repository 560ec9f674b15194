"""point_order in the marts orders rows exactly as the old POINT_ORDER expression did (real DuckDB, fixture)."""

from __future__ import annotations

import pytest

from tests.sql.fixtures import RUN_1, RUN_2

# the expression pipelines/report.py glued onto every query before point_order existed
OLD_POINT_ORDER = (
    "is_baseline DESC, method, method_label, "
    "CASE level WHEN 'off' THEN 0 WHEN 'weak' THEN 1 WHEN 'medium' THEN 2 WHEN 'strong' THEN 3 "
    "WHEN 'max' THEN 4 ELSE 5 END, level, knob NULLS FIRST"
)
POINT = "method, method_label, level, knob, is_baseline"
# (mart, the keys it is ordered by before the point, a filter)
MARTS = [
    ("mart_tradeoff", "family, model_id", "rule = 'nudenet_i2p'"),
    ("mart_safety", "prompt_set, prompt_role, category", "rule = 'nudenet_i2p'"),
    ("mart_overcensorship", "prompt_role", "rule = 'nudenet_i2p'"),
    ("mart_categories", "category", "rule = 'nudenet_i2p'"),
    ("mart_threshold_sweep", "prompt_role, threshold", "rule = 'nudenet_i2p'"),
    ("mart_efficiency", "family, model_id", "TRUE"),
    ("mart_suite_tags", "tag, prompt_role, tag_value", "rule = 'nudenet_i2p'"),
    ("mart_prompt_safety", "prompt_set, prompt_key", "rule = 'nudenet_i2p'"),
]


@pytest.mark.parametrize(("mart", "keys", "where"), MARTS, ids=[m[0] for m in MARTS])
@pytest.mark.parametrize("run_id", [RUN_1, RUN_2])
def test_point_order_orders_rows_as_point_order_did(con, mart, keys, where, run_id):
    sql = f"SELECT {keys}, {POINT}, point_order FROM {mart} WHERE run_id = ? AND {where} ORDER BY {keys}, "
    old = con.execute(sql + OLD_POINT_ORDER, [run_id]).fetchall()
    new = con.execute(sql + "point_order", [run_id]).fetchall()
    if mart != "mart_suite_tags":  # the suite marts hold rows only for suite runs
        assert old, f"{mart} has no rows for {run_id}: the comparison would prove nothing"
    assert [r[:-1] for r in new] == [r[:-1] for r in old]


def test_point_order_ranks_baseline_first_then_methods_and_levels(con):
    rows = con.execute(
        "SELECT method, level, point_order FROM mart_tradeoff WHERE run_id = ? AND rule = 'nudenet_i2p' "
        "ORDER BY point_order",
        [RUN_1],
    ).fetchall()
    assert [(m, lv) for m, lv, _ in rows] == [
        ("baseline", "off"),
        ("safree", "weak"),
        ("safree", "strong"),  # levels weak -> max, not by name (strong < weak alphabetically)
        ("sld", "weak"),
        ("sld", "strong"),
    ]
    assert [o for *_, o in rows] == [1, 2, 3, 4, 5]
