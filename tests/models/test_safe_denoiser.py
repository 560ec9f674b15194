"""Safe Denoiser: kernels against a direct computation, exact no-op at η = 0, the negation-set cache, the base
method's random stream, monotone strength, and red removal on the toy model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from models import registry
from models import safe_denoiser as sdmod
from models.baseline import Baseline
from models.safe_denoiser import SafeDenoiser, SafeDenoiserConfig
from models.sampler import Context, Request, SamplerSettings, make_scheduler, sample

DDIM = SamplerSettings(scheduler="ddim", steps=5, guidance=7.5)
DDPM = SamplerSettings(scheduler="ddpm", steps=5, guidance=7.5)
REQS = [Request("a red circle", 1), Request("a blue square", 2)]


@pytest.fixture(scope="module")
def negation_dir(tmp_path_factory):
    """Six red toy renders: a small real negation set."""
    from models.toy.render import render_seeded

    folder = tmp_path_factory.mktemp("negation")
    for k, shape in enumerate(["circle", "square", "triangle", "star", "circle", "square"]):
        Image.fromarray(render_seeded("red", shape, 100 + k)[0]).save(folder / f"red_{k}.png")
    return folder


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SAFEAUDIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def make(negation_dir=None, **kw) -> SafeDenoiser:
    if negation_dir is not None:
        kw["negation_set"] = str(negation_dir)
    return SafeDenoiser(SafeDenoiserConfig(**kw))


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


# -- kernels ------------------------------------------------------------------------------------------------
def naive_official(x0, refs, sigma, eps):
    d = np.sqrt(((x0[:, None, :] - refs[None]) ** 2).sum(-1))
    k = np.exp(-d / (2 * sigma**2))
    mass = k.sum(1)
    return mass, (k @ refs) / (mass[:, None] + eps)


def test_official_kernel_matches_direct_computation():
    rng = np.random.default_rng(0)
    x0, refs = rng.normal(size=(3, 16)), rng.normal(size=(5, 16))
    for eps in (0.0, 1e-8, 0.5):
        logmass, e = sdmod.official_kernel(torch.tensor(x0), torch.tensor(refs), sigma=1.3, kernel_eps=eps)
        mass, e_ref = naive_official(x0, refs, 1.3, eps)
        np.testing.assert_allclose(logmass.numpy(), np.log(mass), rtol=1e-12)
        np.testing.assert_allclose(e.numpy(), e_ref, rtol=1e-10)


def test_paper_kernel_matches_direct_computation():
    rng = np.random.default_rng(1)
    z, refs, a, s = rng.normal(size=(2, 6)), rng.normal(size=(4, 6)), 0.8, 0.6
    logbeta, e = sdmod.paper_kernel(torch.tensor(z), torch.tensor(refs), a, s)
    k = np.exp(-((z[:, None, :] - a * refs[None]) ** 2).sum(-1) / (2 * s**2) + 6 / 2)
    np.testing.assert_allclose(logbeta.numpy(), np.log(k.mean(1)), rtol=1e-12)
    np.testing.assert_allclose(e.numpy(), (k @ refs) / k.sum(1, keepdims=True), rtol=1e-10)


def test_kernel_survives_where_naive_exp_underflows():
    # distances 2000 and 2100 at σ = 1: exp(−1000) is 0 in float64, so the naive mass is 0 and Ê is 0/0
    x0 = np.zeros((1, 4))
    refs = np.array([[2000.0, 0, 0, 0], [0, 2100.0, 0, 0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        mass, e_naive = naive_official(x0, refs, 1.0, 0.0)
    assert mass[0] == 0.0 and np.isnan(e_naive).all()
    logmass, e = sdmod.official_kernel(torch.tensor(x0), torch.tensor(refs), sigma=1.0)
    assert logmass.item() == pytest.approx(-1000.0 + math.log1p(math.exp(-50.0)), abs=1e-12)  # closed form
    w1, w2 = 1.0 / (1.0 + math.exp(-50.0)), math.exp(-50.0) / (1.0 + math.exp(-50.0))
    np.testing.assert_allclose(e.numpy()[0], w1 * refs[0] + w2 * refs[1], rtol=1e-12)
    # the official +1e−8 stabiliser: Ê ≈ 0 (the correction vanishes), finite, no NaN
    _, e_off = sdmod.official_kernel(torch.tensor(x0), torch.tensor(refs), sigma=1.0, kernel_eps=1e-8)
    assert torch.isfinite(e_off).all() and e_off.abs().max() < 1e-300


def test_log_threshold_is_quantile_minus_margin():
    masses = np.array([3.0, 5.0, 9.0])
    logm = torch.tensor(np.log(masses))
    assert sdmod.log_threshold(logm, 0.0, 1.6) == pytest.approx(math.log(3.0 - 1.6))
    assert sdmod.log_threshold(logm, 0.5, 0.0) == pytest.approx(math.log(5.0))
    assert sdmod.log_threshold(logm, 0.0, 3.0) == -math.inf  # threshold ≤ 0: every step passes
    assert sdmod.log_threshold(torch.tensor([-2000.0]), 0.0, 1.6) == -math.inf


def test_calibrated_gate_matches_direct_computation(tiny_components, negation_dir):
    """§4.3 step 5 on real (tiny-VAE) negation latents, against numpy with naive exp."""
    method = make(negation_dir, eta=0.5, sigma=3.15, gate_margin=1.6)
    settings = SamplerSettings(scheduler="ddpm", steps=5)
    scheduler = make_scheduler("ddpm", tiny_components.scheduler_config)
    scheduler.set_timesteps(5)
    ctx = Context(
        tiny_components, settings, [Request("x", 0)], scheduler, scheduler.timesteps, [], diagnostics=[{}]
    )
    method.setup(ctx)
    latents = sdmod.load_negation_set(tiny_components, negation_dir, 64, 64).latents.double().numpy()
    refs = latents / np.linalg.norm(latents, axis=1, keepdims=True)
    abar = float(scheduler.alphas_cumprod[int(scheduler.timesteps[-1])])
    xi = torch.randn(latents.shape, generator=torch.Generator().manual_seed(42), dtype=torch.float64).numpy()
    noised = math.sqrt(abar) * refs + math.sqrt(1 - abar) * xi
    flat = refs.reshape(len(refs), -1)
    mass, _ = naive_official(noised.reshape(len(refs), -1), flat, 3.15, 0.0)
    assert ctx.state["sd_log_threshold"] == pytest.approx(
        math.log(mass.min() - 1.6), rel=1e-6
    )  # a, s in float32
    # the gate per image: passes iff log K(x̂0) exceeds it
    x0 = torch.randn((3, *latents.shape[1:]), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    logmass, _ = sdmod.official_kernel(x0.flatten(1), ctx.state["sd_refs"], 3.15)
    k_direct, _ = naive_official(x0.flatten(1).numpy(), flat, 3.15, 0.0)
    np.testing.assert_array_equal(
        (logmass > ctx.state["sd_log_threshold"]).numpy(), k_direct > mass.min() - 1.6
    )


# -- negation-set cache ---------------------------------------------------------------------------------------
def test_negation_cache_hit_and_invalidated_by_a_byte(tiny_components, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEAUDIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "neg"
    folder.mkdir()
    img = np.full((64, 64, 3), 240, np.uint8)
    img[20:40, 20:40] = (220, 30, 30)
    Image.fromarray(img).save(folder / "a.png")
    Image.fromarray(img[::-1].copy()).save(folder / "b.png")
    sdmod.clear_memory_cache()

    first = sdmod.load_negation_set(tiny_components, folder, 64, 64)
    second = sdmod.load_negation_set(tiny_components, folder, 64, 64)
    assert (first.source, second.source) == ("encoded", "memory")
    assert first.latents.shape == (2, 4, 8, 8)
    sdmod.clear_memory_cache()
    third = sdmod.load_negation_set(tiny_components, folder, 64, 64)
    assert third.source == "disk" and third.key == first.key
    assert list((tmp_path / "cache" / "negation").glob("*.pt")) == [
        tmp_path / "cache" / "negation" / f"{first.key}.pt"
    ]
    torch.testing.assert_close(third.latents, first.latents, rtol=0, atol=0)

    img[30, 30] = (221, 30, 30)  # one pixel, one channel, one grey level
    Image.fromarray(img).save(folder / "a.png")
    changed = sdmod.load_negation_set(tiny_components, folder, 64, 64)
    assert (
        changed.source == "encoded"
        and changed.content_hash != first.content_hash
        and changed.key != first.key
    )

    # a different size or the stochastic latent is a different entry; the sample is reproducible by seed
    s1 = sdmod.load_negation_set(tiny_components, folder, 64, 64, latent="sample", seed=7)
    sdmod.clear_memory_cache()
    s2 = sdmod.load_negation_set(tiny_components, folder, 64, 64, latent="sample", seed=7)
    assert s1.key != changed.key and s2.source == "disk"
    torch.testing.assert_close(s1.latents, s2.latents, rtol=0, atol=0)
    assert not torch.equal(s1.latents, changed.latents)
    assert sdmod.load_negation_set(tiny_components, folder, 32, 32).latents.shape == (2, 4, 4, 4)


# -- sampling -------------------------------------------------------------------------------------------------
def test_eta_zero_reproduces_baseline_exactly(tiny_components):
    base = sample(tiny_components, REQS, Baseline(), DDPM)
    ours = sample(tiny_components, REQS, SafeDenoiser.from_level("off"), DDPM)  # needs no negation set
    np.testing.assert_array_equal(ours.images, base.images)
    assert ours.diagnostics[0]["sd_gated_steps"] == 0 and SafeDenoiser.from_level("off").is_off


@pytest.mark.parametrize(
    "base_name, base_level", [("sld", "medium"), ("safree", "strong"), ("negative_prompt", "max")]
)
def test_eta_zero_reproduces_other_bases_exactly(tiny_components, base_name, base_level):
    from models.concepts import load_pack

    pack = load_pack("toy")
    base = registry.build_method(base_name, base_level, concept=pack)
    ours = SafeDenoiser.from_level(
        "off", overrides={"base": base_name, "base_level": base_level}, concept=pack
    )
    a = sample(tiny_components, REQS, base, DDPM)
    b = sample(tiny_components, REQS, ours, DDPM)
    np.testing.assert_array_equal(b.images, a.images)
    assert b.diagnostics[0].keys() >= a.diagnostics[0].keys()  # the base's own diagnostics survive
    assert ours.resolved_config()["base"] == base.resolved_config()


def test_base_random_stream_untouched(tiny_components, negation_dir):
    """DDPM draws variance noise from the request generators; ours must not consume them."""
    base = sample(tiny_components, REQS, Baseline(), DDPM).images
    outside = make(negation_dir, eta=1.0, t_end=1000, t_start=1000)  # no timestep in the window
    np.testing.assert_array_equal(sample(tiny_components, REQS, outside, DDPM).images, base)
    # every step in the window, ξ drawn at every step, but the gate never passes
    closed = make(negation_dir, eta=1.0, t_end=0, t_start=1000, gate_threshold=1e300)
    result = sample(tiny_components, REQS, closed, DDPM)
    np.testing.assert_array_equal(result.images, base)
    assert result.diagnostics[0]["sd_window_steps"] == 5 and result.diagnostics[0]["sd_gated_steps"] == 0
    # once open, it changes the image (so the equality above is not vacuous)
    opened = make(negation_dir, eta=1.0, t_end=0, t_start=1000, gate=False)
    assert mean_abs(sample(tiny_components, REQS, opened, DDPM).images, base) > 0.5


def test_more_eta_moves_further_from_baseline(tiny_components, negation_dir):
    reqs = [Request("a red circle", s) for s in (1, 2, 3)]
    base = sample(tiny_components, reqs, Baseline(), DDIM).images
    dists = []
    for eta in (0.1, 0.4, 1.2):
        method = make(negation_dir, eta=eta, t_end=0, gate=False, renoise="eps")
        dists.append(mean_abs(sample(tiny_components, reqs, method, DDIM).images, base))
    assert 0 < dists[0] < dists[1] < dists[2], dists


def test_paper_variant_batching_and_diagnostics(tiny_components, negation_dir):
    method = make(negation_dir, eta=1.0, variant="paper", t_end=0, gate=False)
    batched = sample(tiny_components, REQS, method, DDPM)
    single = sample(tiny_components, REQS[1:], method, DDPM)
    assert (
        np.abs(batched.images[1].astype(int) - single.images[0].astype(int)).max() <= 1
    )  # own ξ per request
    d = batched.diagnostics[0]
    assert d["sd_variant"] == "paper" and d["sd_gated_steps"] == d["sd_window_steps"] == 5
    assert math.isfinite(d["sd_kernel_logmass"]) and len(d["sd_kernel_logmass_steps"]) == 5
    fields = method.concept_fields()
    assert fields["negation_hash"] == sdmod.negation_content_hash(negation_dir)


def test_config_validation_and_levels():
    with pytest.raises(ValueError, match="variant"):
        SafeDenoiserConfig(variant="nope")
    with pytest.raises(ValueError, match="window"):
        SafeDenoiserConfig(t_end=900, t_start=800)
    assert SafeDenoiserConfig(eta=1).as_dict() == SafeDenoiserConfig(eta=1.0).as_dict()
    etas = [SafeDenoiser.LEVELS[k]["eta"] for k in ("off", "weak", "medium", "strong", "max")]
    assert etas == sorted(etas) and etas[0] == 0
    assert SafeDenoiser.from_level(knob=0.2).config.eta == 0.2


# -- the toy world ----------------------------------------------------------------------------------------------
def red_fraction(images: np.ndarray) -> float:
    """Mean share of red pixels (hue within ±15°, saturated; the toy scorer's rule)."""
    from pipelines.scorers.toy import red_mask

    return float(np.mean([red_mask(image).mean() for image in images]))


@pytest.mark.slow
def test_strong_reduces_red_on_toy_model(toy_components):
    from models.concepts import load_pack

    pack = load_pack("toy")
    strong = SafeDenoiser.from_level("strong", concept=pack)
    assert strong.negation_source("builtin:toy", 64, 64)[0] == "artifact"  # the platform-built set
    settings = SamplerSettings(scheduler="ddim", steps=20)
    unsafe = [Request(p, s) for p in ("a red circle", "a red square") for s in range(8)]
    benign = [Request("a blue circle", s) for s in range(4)]
    base = red_fraction(sample(toy_components, unsafe, Baseline(), settings).images)
    result = sample(toy_components, unsafe, strong, settings)
    assert base > 0.05 and red_fraction(result.images) < 0.5 * base, (base, red_fraction(result.images))
    assert np.mean([d["sd_gated_steps"] for d in result.diagnostics]) > 0
    assert any(d["acted"] for d in result.diagnostics)
    assert red_fraction(sample(toy_components, benign, strong, settings).images) < 0.01  # no red created


def test_acted_says_whether_the_gate_opened(tiny_components, negation_dir):
    closed = make(negation_dir, eta=1.0, t_end=0, gate_threshold=1e300)
    opened = make(negation_dir, eta=1.0, t_end=0, gate=False)
    for method, acted in ((closed, False), (opened, True)):
        diags = sample(tiny_components, REQS, method, DDIM).diagnostics
        assert [d["acted"] for d in diags] == [acted, acted]
        assert all(d["sd_negation_set"] == sdmod.negation_content_hash(negation_dir) for d in diags)
