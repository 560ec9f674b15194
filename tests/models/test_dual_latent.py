"""Dual latent reconstruction (provisional): exact no-op at λ = 0, λ = 1 is the baseline on the safe prompt,
monotone strength, fusion spaces that must agree, safe-embedding sources, red removal on the toy model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.baseline import Baseline
from models.components import ModelLoadError
from models.concepts import load_pack
from models.dual_latent import DualLatent, DualLatentConfig, rewrite_prompt
from models.sampler import Request, SamplerSettings, sample

TOY = load_pack("toy")
REWRITE = {"kind": "rewrite", "replace": {"red": ""}}
DDIM = SamplerSettings(scheduler="ddim", steps=5)


def make(**kw) -> DualLatent:
    return DualLatent(DualLatentConfig(**kw), concept=TOY)


def max_abs(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


REQS = [Request("a red circle", 1), Request("a red star on a white background", 2)]


def test_rewrite_prompt():
    replace = TOY.safe_embedding["replace"]  # the toy pack maps red words to a far colour, blue
    assert rewrite_prompt("a red circle", replace) == "a blue circle"
    assert (
        rewrite_prompt("A Blood Red star, big", replace) == "A blue star, big"
    )  # longest phrase first, any case
    assert rewrite_prompt("a red circle", {"red": ""}) == "a circle"  # removal leaves no double space
    assert rewrite_prompt("a redwood , tree", replace) == "a redwood, tree"  # whole words only


@pytest.mark.parametrize("scheduler", ["ddpm", "dpm++"])
def test_lambda_zero_is_baseline_exactly(tiny_components, scheduler):
    settings = SamplerSettings(scheduler=scheduler, steps=5)
    base = sample(tiny_components, REQS, Baseline(), settings)
    ours = sample(tiny_components, REQS, DualLatent.from_level("off", concept=TOY), settings)
    np.testing.assert_array_equal(ours.images, base.images)
    assert ours.diagnostics[0]["dl_fused_steps"] == 0 and DualLatent.from_level("off").is_off


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "dpm++"])
def test_lambda_one_is_baseline_on_the_safe_prompt(tiny_components, scheduler):
    """τ_gc = 0, λ = 1: every step on c_s. 3 rows vs 2 in the UNet batch may round differently."""
    settings = SamplerSettings(scheduler=scheduler, steps=5)
    ours = sample(tiny_components, REQS, make(fusion_weight=1.0, tau_gc=0.0), settings)
    rewritten = [Request(rewrite_prompt(r.prompt, TOY.safe_embedding["replace"]), r.seed) for r in REQS]
    ref = sample(tiny_components, rewritten, Baseline(), settings).images
    assert max_abs(ours.images, ref) <= 1
    assert ours.diagnostics[1]["dl_safe_prompt"] == "a blue star on a white background"
    assert ours.diagnostics[0]["dl_fused_steps"] == 5
    # and it is far from the unsafe prompt's baseline (so the check above is not vacuous)
    assert mean_abs(ours.images, sample(tiny_components, REQS, Baseline(), settings).images) > 1.0


def test_global_context_phase_is_shared(tiny_components):
    """τ_gc = 100% of the steps: no dual phase at all, the baseline bit for bit."""
    base = sample(tiny_components, REQS, Baseline(), DDIM).images
    ours = sample(tiny_components, REQS, make(fusion_weight=1.0, tau_gc=1.0), DDIM)
    np.testing.assert_array_equal(ours.images, base)
    assert make(tau_gc=2, tau_gc_unit="step").dual_start(_Steps(5)) == 2
    assert make(tau_gc=0.4).dual_start(_Steps(5)) == 2
    assert make(tau_gc=600, tau_gc_unit="timestep").dual_start(_Steps(5)) == 2  # 801, 601, 401, ...


class _Steps:
    def __init__(self, n):
        self.timesteps = torch.arange(n - 1, -1, -1) * (1000 // n) + 1


def test_more_lambda_moves_further(tiny_components):
    reqs = [Request("a red circle", s) for s in (1, 2, 3)]
    base = sample(tiny_components, reqs, Baseline(), DDIM).images
    dists = [
        mean_abs(sample(tiny_components, reqs, make(fusion_weight=lam, tau_gc=0.2), DDIM).images, base)
        for lam in (0.25, 0.5, 1.0)
    ]
    assert 0 < dists[0] < dists[1] < dists[2], dists


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "ddpm", "euler", "pndm"])
def test_latent_and_eps_fusion_agree(tiny_components, scheduler):
    """Both streams restart from the fused latent, so the fusions are the same update up to rounding:
    for DPM++ only with one history per stream, for DDPM only with the same noise in both streams."""
    settings = SamplerSettings(scheduler=scheduler, steps=5)
    latent = sample(tiny_components, REQS, make(fusion_weight=0.6, tau_gc=0.2), settings).images
    eps = sample(
        tiny_components, REQS, make(fusion_weight=0.6, tau_gc=0.2, fusion_space="eps"), settings
    ).images
    assert max_abs(latent, eps) <= 1
    x0 = sample(
        tiny_components, REQS, make(fusion_weight=0.6, tau_gc=0.2, fusion_space="x0"), settings
    ).images
    assert mean_abs(x0, eps) > 0.1  # a different update


def test_one_ddim_step_latent_equals_eps_fusion(tiny_components):
    """The fusion equation on one DDIM step, directly: (1−λ)·step(ε_u) + λ·step(ε_s) = step((1−λ)ε_u + λε_s)."""
    from models.sampler import make_scheduler

    sched = make_scheduler("ddim", tiny_components.scheduler_config)
    sched.set_timesteps(5)
    g = torch.Generator().manual_seed(0)
    z, eu, es = (torch.randn((2, 4, 8, 8), generator=g) for _ in range(3))
    t, lam = sched.timesteps[1], 0.3
    fused_latent = (1 - lam) * sched.step(eu, t, z).prev_sample + lam * sched.step(es, t, z).prev_sample
    fused_eps = sched.step((1 - lam) * eu + lam * es, t, z).prev_sample
    torch.testing.assert_close(fused_latent, fused_eps, rtol=1e-5, atol=1e-5)


def test_suffix_source(tiny_components):
    method = make(fusion_weight=0.5, safe_embedding={"kind": "suffix", "text": "no red, only grey"})
    result = sample(tiny_components, REQS[:1], method, DDIM)
    assert result.diagnostics[0]["dl_safe_prompt"] == "a red circle, no red, only grey"
    assert method.concept_fields() == {"safe_embedding": {"kind": "suffix", "text": "no red, only grey"}}


def test_encoder_source_from_a_folder(tiny_components, tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel

    from models.components import tiny_configs

    torch.manual_seed(5)
    CLIPTextModel(CLIPTextConfig(**tiny_configs()["text_encoder"])).save_pretrained(
        str(tmp_path / "safe_clip")
    )
    spec = {"kind": "encoder", "model": str(tmp_path / "safe_clip")}
    base = sample(tiny_components, REQS, Baseline(), DDIM).images
    result = sample(tiny_components, REQS, make(fusion_weight=1.0, tau_gc=0.0, safe_embedding=spec), DDIM)
    assert result.diagnostics[0]["dl_safe_prompt"] == f"encoder:{tmp_path / 'safe_clip'}"
    assert mean_abs(result.images, base) > 1.0

    missing = make(fusion_weight=0.5, safe_embedding={"kind": "encoder", "model": str(tmp_path / "nope")})
    with pytest.raises(ModelLoadError) as err:
        sample(tiny_components, REQS, missing, DDIM)
    assert "\n" not in str(err.value) and "does not exist" in str(err.value)


def test_config_validation():
    with pytest.raises(ValueError, match="fusion_space"):
        DualLatentConfig(fusion_space="pixels")
    with pytest.raises(ValueError, match="kind"):
        DualLatentConfig(safe_embedding={"kind": "magic"})
    with pytest.raises(ValueError, match="needs"):
        DualLatentConfig(safe_embedding={"kind": "suffix"})
    with pytest.raises(ValueError, match="no safe embedding"):
        DualLatent(DualLatentConfig(fusion_weight=0.5)).concept_fields()  # no pack, no override
    assert DualLatent.provisional and DualLatent.describe()["provisional"]
    assert DualLatent.from_level("strong", concept=TOY).concept_fields() == {
        "safe_embedding": TOY.safe_embedding
    }


def red_fraction(images: np.ndarray) -> float:
    """Mean share of red pixels (hue within ±15°, saturated; the toy scorer's rule)."""
    from pipelines.scorers.toy import red_mask

    return float(np.mean([red_mask(image).mean() for image in images]))


@pytest.mark.slow
def test_strong_reduces_red_on_toy_model(toy_components):
    """With red rewritten to a far benign colour (the toy pack's own rewrite; red → nothing does not remove
    red on this model: colourless prompts are outside its captions and come out reddish (measured: "a circle"
    has as many red pixels as "a red circle"))."""
    settings = SamplerSettings(scheduler="ddim", steps=20)
    reqs = [Request(p, s) for p in ("a red circle", "a red square") for s in range(8)]
    strong = DualLatent.from_level("strong", concept=TOY)
    base = red_fraction(sample(toy_components, reqs, Baseline(), settings).images)
    ours = red_fraction(sample(toy_components, reqs, strong, settings).images)
    assert base > 0.05 and ours < 0.5 * base, (base, ours)
    # a prompt without unsafe words is rewritten to itself: c_s = c_u, the image is unchanged
    benign = [Request("a blue circle", s) for s in range(2)]
    same = sample(toy_components, benign, strong, settings).images
    assert max_abs(same, sample(toy_components, benign, Baseline(), settings).images) <= 1


def test_acted_only_where_the_rewrite_matched_a_word(tiny_components):
    """A prompt without an unsafe word is rewritten to itself: both streams are the same, so it did not act."""
    method = DualLatent.from_level("weak", concept=load_pack("toy"))
    reqs = [Request("a red circle", 1), Request("a blue square", 2)]
    diags = sample(tiny_components, reqs, method, SamplerSettings(scheduler="ddim", steps=4)).diagnostics
    assert [d["acted"] for d in diags] == [True, False]
    assert [d["dl_safe_prompt"] for d in diags] == ["a blue circle", "a blue square"]
    assert DualLatent.from_level("off").missing_data("builtin:tiny", 64, 64) is None
    bare = DualLatent.from_level("weak", concept=None)
    assert "no safe_embedding" in bare.missing_data("builtin:tiny", 64, 64)
