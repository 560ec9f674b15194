"""Every benchmark runs end to end in its ``--quick`` mode and reports the rows and ratios it promises.

No wall-clock time is asserted (the machine is shared): only that each expected row is there and each ratio or
time is a finite positive number. The full-size SD 1.5 configs are checked on the meta device (no weights).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _module(name: str):
    """A bench script as a module (they import each other as ``common``, like ``python bench/x.py`` does)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    module = sys.modules.get(name)
    if module is None or Path(getattr(module, "__file__", "") or "").parent != BENCH:
        # registered before it runs, as a plain import would: dataclasses look their module up by name
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    assert Path(module.__file__).parent == BENCH, f"{name} resolved to {module.__file__}"
    return module


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_common_interleaved_and_meters():
    common = _module("common")
    calls = []
    t = common.interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1
    )
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then a rotating start
    assert all(_positive(x) for xs in t.rounds.values() for x in xs)
    assert _positive(t.ratio("a", "b"))

    class Part:
        def forward(self, x):
            return x

    part = Part()
    with common.metered({"p": (part, "forward")}) as meters:
        part.forward(np.zeros((5, 2)))
    assert (meters["p"].calls, meters["p"].rows) == (1, 5)
    assert "forward" not in vars(part)  # the wrapper is gone again


@pytest.mark.slow
def test_full_size_configs_on_meta_device():
    bench = _module("bench_methods")
    c = bench.full_size_components(device="meta")
    # SD 1.5: UNet 859.5 M, VAE 83.7 M, CLIP ViT-L/14 text tower 123.1 M parameters
    assert round(bench.n_params(c.unet) / 1e6, 1) == 859.5
    assert round(bench.n_params(c.vae) / 1e6, 1) == 83.7
    assert round(bench.n_params(c.text_encoder) / 1e6, 1) == 123.1
    assert c.vae_scale_factor == 8 and c.unet.config.cross_attention_dim == c.text_encoder.config.hidden_size


@pytest.mark.slow
def test_bench_methods_quick(tmp_path):
    bench = _module("bench_methods")
    out = bench.main(["--quick", "--json", str(tmp_path / "m.json")])
    rows = out["methods"]["rows"]
    keys = {(r["method"], r["level"]) for r in rows}
    for method in ("sld", "safree", "safe_denoiser", "dual_latent", "negative_prompt"):
        assert (method, "off") in keys and (method, "strong") in keys
    assert ("baseline", "off") in keys
    floors = {(r["method"], r["level"]): r["floor"] for r in rows}
    assert floors[("sld", "strong")] == 1.5 and floors[("sld", "off")] == 1.0  # counted UNet rows
    assert floors[("negative_prompt", "strong")] == 1.0
    for r in rows:
        assert _positive(r["ratio"]) and _positive(r["floor"]) and _positive(r["ms_per_image"]), r
    (d,) = out["diffusers"]["rows"]
    assert d["level"] == "medium" and _positive(d["ratio"]) and d["max_pixel_diff"] <= 2
    (s,) = out["safree"]["rows"]
    assert _positive(s["speedup"]) and s["n_prompts"] == 2
    assert _positive(s["speedup_vs_cold_loop"]) and s["cold_loop_same_images"]  # the cache changes no pixel
    assert (tmp_path / "m.json").exists()


@pytest.mark.slow
def test_bench_pipeline_quick(tmp_path):
    bench = _module("bench_pipeline")
    out = bench.main(["--quick", "--json", str(tmp_path / "p.json")])
    e2e = out["end_to_end"]
    rows = {r["variant"]: r for r in e2e["rows"]}
    assert list(rows) == ["bare", "run_audit", "run_audit_serial"]
    assert all(_positive(r["images_per_s"]) and _positive(r["cpu_s"]) for r in rows.values())
    assert _positive(e2e["ratio"]) and e2e["variant"] == "run_audit"
    assert _positive(rows["run_audit_serial"]["ratio"])
    assert rows["run_audit"]["finish"] == "helper process" and _positive(rows["run_audit"]["helper_cpu_s"])
    spans = {r["span"]: r for r in e2e["breakdown"]}
    for name in (
        "plan",
        "sample_batch",
        "  sample",
        "write_batch",
        "  png_encode",
        "score_batch",
        "load_run",
    ):
        assert _positive(spans[name]["run_audit_serial ms/image"]), name
    # overlapped: this process samples and loads; writing and scoring happen in the helper process
    for name in ("sample_batch", "load_run"):
        assert _positive(spans[name]["run_audit ms/image"]), name
    assert spans["write_batch"]["run_audit calls"] == 0 and spans["score_batch"]["run_audit calls"] == 0
    per_image = {r["work"]: r["ms_per_image"] for r in out["per_image"]["rows"]}
    assert {"png_encode", "thumbnail_webp", "scorer:degenerate", "total"} <= set(per_image)
    assert all(_positive(v) for v in per_image.values())


@pytest.mark.slow
def test_bench_warehouse_quick(tmp_path):
    bench = _module("bench_warehouse")
    out = bench.main(["--quick", "--tmp", str(tmp_path / "wh"), "--json", str(tmp_path / "w.json")])
    load = {r["variant"]: r for r in out["load"]["rows"]}
    assert set(load) == {"load_empty", "reload_same", "into_query_wh"}
    # one new run: 10 score rows per image, whole prompts x 13 method points x 5 images (19,500 of 20,000)
    assert load["load_empty"]["rows_added"] == load["load_empty"]["rows"] >= 19_000
    assert load["into_query_wh"]["rows_added"] == load["load_empty"]["rows"]
    assert load["reload_same"]["rows_added"] == 0
    assert all(_positive(r["median_s"]) and _positive(r["refresh"]) for r in load.values())
    assert out["query_warehouse"]["score_rows"] == out["query_warehouse"]["generations"] * 10
    queries = {r["query"]: r for r in out["query"]["rows"]}
    assert {"one_rule", "one_run_one_rule", "mart_runs"} <= set(queries)
    assert all(_positive(r["median_s"]) and r["result_rows"] > 0 for r in queries.values())


def test_synthetic_ids_are_unique_hex():
    bench = _module("bench_warehouse")
    ids = bench.hex_ids(np.arange(10_000), salt=1).to_pylist()
    assert len(set(ids)) == 10_000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.slow
def test_full_size_family_configs_on_meta_device():
    """SDXL-base and SD3-medium architectures (random weights) have their published parameter counts."""
    bench = _module("bench_methods")
    xl = bench.full_size_family_components("sdxl", device="meta")
    assert round(bench.n_params(xl.unet) / 1e6, 1) == 2567.5  # SDXL-base UNet
    assert round(bench.n_params(xl.text_encoder_2) / 1e6, 1) == 694.7  # OpenCLIP bigG text tower + projection
    assert xl.unet.config.cross_attention_dim == 768 + 1280
    sd3 = bench.full_size_family_components("sd3", device="meta")
    assert round(bench.n_params(sd3.unet) / 1e6, 1) == 2028.3  # SD3-medium MMDiT
    assert sd3.family == "sd3" and sd3.vae.config.latent_channels == 16


@pytest.mark.slow
def test_bench_methods_family_quick(tmp_path):
    bench = _module("bench_methods")
    out = bench.main(["--family", "sd3", "--quick", "--methods", "sld,dual_latent", "--levels", "off,strong"])
    keys = {(r["method"], r["level"]) for r in out["methods"]["rows"]}
    assert keys == {("baseline", "off"), ("sld", "off"), ("sld", "strong")}  # dual_latent: not on sd3
    floors = {(r["method"], r["level"]): r["floor"] for r in out["methods"]["rows"]}
    assert floors[("sld", "strong")] == 1.5 and out["methods"]["scheduler"] == "euler"
