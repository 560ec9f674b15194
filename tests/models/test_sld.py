"""SLD: parity with diffusers' StableDiffusionPipelineSafe at every named level, off = baseline, diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import models.sampler as sampler_module
from models.sampler import Request, SamplerSettings, make_scheduler, sample
from models.sld import DEFAULT_CONCEPT, SLD

PROMPT, SEED = "a photo of a cat", 3
# 20 steps so that every preset's warm-up ends inside the run (WEAK's δ = 15 leaves 5 guided steps).
SETTINGS = SamplerSettings(scheduler="ddim", steps=20, guidance=7.5, height=64, width=64)
LEVELS = ("weak", "weak_paper", "medium", "strong", "max")


@pytest.fixture(scope="module")
def safe_pipe(tiny_components):
    from diffusers.pipelines.deprecated.stable_diffusion_safe import StableDiffusionPipelineSafe

    c = tiny_components
    pipe = StableDiffusionPipelineSafe(
        c.vae,
        c.text_encoder,
        c.tokenizer,
        c.unet,
        make_scheduler("ddim", c.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def baseline(tiny_components):
    return sample(tiny_components, [Request(PROMPT, SEED)], settings=SETTINGS).images[0]


def run_diffusers(pipe, method: SLD):
    """diffusers' image (uint8, rounded as our decode does) and its final latents (from the step callback)."""
    pipe.safety_concept = method.concept_text
    sld_kwargs = {k: v for k, v in method.config.as_dict().items() if k.startswith("sld_")}
    last = {}
    image = pipe(
        PROMPT,
        num_inference_steps=SETTINGS.steps,
        guidance_scale=SETTINGS.guidance,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="np",
        callback=lambda i, t, z: last.update(latents=z.clone()),
        callback_steps=1,
        **sld_kwargs,
    ).images[0]
    return (image * 255).round().astype("uint8"), last["latents"]


def run_ours(components, method, monkeypatch):
    """Our image and final latents (captured on their way into the VAE decode)."""
    last = {}
    decode = sampler_module.decode

    def capture(comp, latents):
        last["latents"] = latents.clone()
        return decode(comp, latents)

    monkeypatch.setattr(sampler_module, "decode", capture)
    result = sample(components, [Request(PROMPT, SEED)], method=method, settings=SETTINGS)
    monkeypatch.setattr(sampler_module, "decode", decode)
    return result, last["latents"]


@pytest.mark.parametrize("level", LEVELS)
def test_equals_diffusers_safe_pipeline(tiny_components, safe_pipe, pack, level, monkeypatch):
    method = SLD.from_level(level, concept=pack)
    ours, our_latents = run_ours(tiny_components, method, monkeypatch)
    ref, ref_latents = run_diffusers(safe_pipe, method)
    # The loop is bit-exact (same ops in the same order). The decoded images may still differ by one grey level
    # in a few pixels, because diffusers' decode scales the latents as (1/s)·z and ours as z/s: measured max
    # |Δ| = 0 at weak, weak_paper, medium and strong, 1 (one pixel) at max, 20 DDIM steps.
    torch.testing.assert_close(our_latents, ref_latents, rtol=0, atol=0)
    assert np.abs(ours.images[0].astype(int) - ref.astype(int)).max() <= 1


class WrongOrderSLD(SLD):
    """A deliberate bug: reads the branches as [prompt; uncond; concept] (diffusers' dead helper's mistake)."""

    def guide(self, ctx, i, t, eps_rows):
        uncond, text, concept = eps_rows.chunk(3)
        return super().guide(ctx, i, t, torch.cat([text, uncond, concept]))


class WrongSignSLD(SLD):
    """A deliberate bug: adds the safety term instead of subtracting it (flip the concept's side)."""

    def guide(self, ctx, i, t, eps_rows):
        uncond, text, concept = eps_rows.chunk(3)
        return super().guide(ctx, i, t, torch.cat([uncond, text, 2 * uncond - concept]))


@pytest.mark.parametrize("variant", [WrongOrderSLD, WrongSignSLD])
@pytest.mark.parametrize("level", ["weak", "medium"])
def test_parity_test_catches_wrong_variants(tiny_components, safe_pipe, pack, variant, level, monkeypatch):
    # On random tiny weights the safety term is small (weak moves the image by ~0.002 grey levels on average),
    # so the parity test compares latents exactly: a wrong order or sign must show up there even at weak.
    wrong = variant.from_level(level, concept=pack)
    _, wrong_latents = run_ours(tiny_components, wrong, monkeypatch)
    _, ref_latents = run_diffusers(safe_pipe, wrong)
    assert (wrong_latents - ref_latents).abs().max() > 1e-4


def test_max_moves_the_image(tiny_components, pack, baseline):
    image = sample(
        tiny_components,
        [Request(PROMPT, SEED)],
        method=SLD.from_level("max", concept=pack),
        settings=SETTINGS,
    )
    assert np.abs(image.images[0].astype(int) - baseline.astype(int)).mean() > 2.0  # measured ≈ 11


def test_off_is_baseline(tiny_components, pack, baseline):
    method = SLD.from_level("off", concept=pack)
    assert method.is_off and method.concept_fields() == {}
    np.testing.assert_array_equal(
        sample(tiny_components, [Request(PROMPT, SEED)], method=method, settings=SETTINGS).images[0], baseline
    )


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0])
def test_guidance_scale_at_most_one_is_baseline(tiny_components, pack, baseline, scale):
    method = SLD.from_level("max", overrides={"sld_guidance_scale": scale}, concept=pack)
    result = sample(tiny_components, [Request(PROMPT, SEED)], method=method, settings=SETTINGS)
    np.testing.assert_array_equal(result.images[0], baseline)
    assert result.diagnostics[0]["sld_applied_steps"] == 0


def test_no_cfg_is_baseline(tiny_components, pack):
    settings = SamplerSettings(scheduler="ddim", steps=4, guidance=1.0)
    ours = sample(
        tiny_components,
        [Request(PROMPT, SEED)],
        method=SLD.from_level("max", concept=pack),
        settings=settings,
    )
    base = sample(tiny_components, [Request(PROMPT, SEED)], settings=settings)
    np.testing.assert_array_equal(ours.images, base.images)


def test_diagnostics(tiny_components, pack):
    reqs = [Request(PROMPT, SEED), Request("a red apple", 5)]
    medium = sample(tiny_components, reqs, method=SLD.from_level("medium", concept=pack), settings=SETTINGS)
    for diag in medium.diagnostics:
        assert diag["sld_applied_steps"] == SETTINGS.steps - 10  # δ = 10
        assert 0.0 < diag["sld_masked_fraction"] <= 1.0
    weak = sample(tiny_components, reqs[:1], method=SLD.from_level("weak", concept=pack), settings=SETTINGS)
    assert weak.diagnostics[0]["sld_applied_steps"] == 5
    # λ = 1 masks in nearly every element; λ = 0 (weak) only those where ε_p < ε_S, about half
    maxed = sample(tiny_components, reqs[:1], method=SLD.from_level("max", concept=pack), settings=SETTINGS)
    assert maxed.diagnostics[0]["sld_masked_fraction"] > weak.diagnostics[0]["sld_masked_fraction"]


def test_concept_string_is_recorded(pack):
    assert SLD.from_level("medium", concept=pack).resolved_config()["concept"] == {
        "sld_concept": pack.sld_concept
    }
    assert SLD.from_level("medium").concept_text == DEFAULT_CONCEPT  # no pack: diffusers' default
    override = SLD.from_level("medium", overrides={"concept": "violence"}, concept=pack)
    resolved = override.resolved_config()
    assert resolved["concept"] == {"sld_concept": "violence"}
    json.dumps(resolved)
    assert override.config_hash() != SLD.from_level("medium", concept=pack).config_hash()


def test_levels_match_diffusers_presets():
    from diffusers.pipelines.deprecated.stable_diffusion_safe import SafetyConfig

    for level, preset in [
        ("weak", SafetyConfig.WEAK),
        ("medium", SafetyConfig.MEDIUM),
        ("strong", SafetyConfig.STRONG),
        ("max", SafetyConfig.MAX),
    ]:
        config = SLD.from_level(level).config.as_dict()
        assert {k: config[k] for k in preset} == preset
    assert SLD.from_level("weak_paper").config.sld_guidance_scale == 200
    assert SLD.Config().as_dict() | {"concept": None} == SLD.from_level("medium").config.as_dict()


def test_knob_hits_the_presets_and_interpolates():
    for u, level in enumerate(["off", "weak", "medium", "strong", "max"]):
        by_knob = SLD.from_level(knob=float(u))
        assert by_knob.config == SLD.from_level(level).config or (u == 0 and by_knob.is_off)
    half = SLD.from_level(knob=1.5).config  # halfway WEAK → MEDIUM
    assert half.sld_warmup_steps == 13 and half.sld_guidance_scale == pytest.approx((20 * 1000) ** 0.5)
    assert half.sld_threshold == pytest.approx(0.005) and half.sld_mom_beta == pytest.approx(0.2)
    with pytest.raises(ValueError, match="strength"):
        SLD.from_level(knob=4.5)
