"""mart_efficiency on the fixture warehouse (hand-set batch costs), and pipelines.efficiency on the real
tiny UNet: rows per step per image for a CFG baseline and for SLD, NULL peak memory on CPU."""

from __future__ import annotations

import pytest

from tests.sql.fixtures import KNOWN, POINTS, RUN_1, RUN_2


@pytest.mark.parametrize("run_id", [RUN_1, RUN_2])
def test_mart_efficiency_equals_the_hand_set_costs(con, run_id):
    known = KNOWN["efficiency_run_1" if run_id == RUN_1 else "efficiency_run_2"]
    rows = con.execute(
        "SELECT method, method_label, level, knob, unet_rows_per_step, rows_vs_baseline, peak_mem_bytes, "
        "sample_s_per_image, n_batches, n_batches_measured, peak_mem_device FROM mart_efficiency "
        "WHERE run_id = ?",
        [run_id],
    ).fetchall()
    assert len(rows) == len(known)
    for point, (rows_ps, ratio, peak, s_img) in known.items():
        method, label, level, knob, *_ = POINTS[point]
        row = next(r for r in rows if r[:4] == (method, label or method, level, knob))
        assert row[4] == (pytest.approx(rows_ps) if rows_ps is not None else None)
        assert row[5] == (pytest.approx(ratio) if ratio is not None else None)
        assert row[6] == peak
        assert row[7] == (pytest.approx(s_img) if s_img is not None else None)
        assert row[8] == 1 and row[9] == (0 if rows_ps is None else 1)
        assert row[10] == ("cuda:0" if peak else None)


def test_seconds_per_image_agrees_with_mart_tradeoff(con):
    pairs = con.execute(
        "SELECT e.seconds_per_image, t.seconds_per_image FROM mart_efficiency e JOIN mart_tradeoff t "
        "USING (run_id, method, method_label, level) WHERE t.rule = 'nudenet_i2p' "
        "AND e.knob IS NOT DISTINCT FROM t.knob"
    ).fetchall()
    assert len(pairs) == 7 and all(a == b for a, b in pairs)


def test_measure_counts_unet_rows_on_the_real_tiny_model(tiny_components):
    from models.concepts import load_pack
    from models.registry import build_method
    from models.sampler import Request, SamplerSettings, sample
    from pipelines.efficiency import BatchCost, measure

    settings = SamplerSettings(steps=3, height=64, width=64)
    requests = [Request("a red circle", 1), Request("a blue square", 2)]
    costs = {}
    for name, level in (("baseline", "off"), ("sld", "max")):
        method = build_method(name, level=level, concept=load_pack("toy"))
        cost = BatchCost()
        with measure(tiny_components) as used:
            sample(tiny_components, requests, method=method, settings=settings)
        cost.add(used, settings.steps, len(requests), 0.5)
        costs[name] = cost.manifest()
    # classifier-free guidance: 2 rows per image per step in one batched call; SLD adds the safety row
    assert costs["baseline"]["unet_rows_per_step"] == pytest.approx(2.0)
    assert costs["baseline"]["unet_calls_per_step"] == pytest.approx(1.0)
    assert costs["sld"]["unet_rows_per_step"] == pytest.approx(3.0)
    assert costs["baseline"]["peak_mem_bytes"] is None  # CPU: no device memory, recorded as NULL
    # the hook is gone afterwards: a later forward is not counted
    assert not tiny_components.unet._forward_pre_hooks
