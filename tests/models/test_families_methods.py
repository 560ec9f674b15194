"""Methods on SDXL and SD3 beyond the contract: the Safe Denoiser's release SD3 setting acts through the
flow-matching x̂0, SLD's concept row is conditioned like a prompt, and batching holds per family."""

from __future__ import annotations

import numpy as np
import pytest

from models.registry import method_class
from models.sampler import Request, SamplerSettings, sample

SD3 = SamplerSettings(scheduler="euler", steps=6, guidance=2.5)  # the release's CFG for SD3
PROMPTS = [Request("a red circle", 1), Request("a red star on a blue background", 2)]


def test_safe_denoiser_official_sd3_acts_in_its_window(tiny_family_components, pack):
    components = tiny_family_components("sd3")
    method = method_class("safe_denoiser").from_level("official_sd3", concept=pack)
    result = sample(components, PROMPTS, method=method, settings=SD3)
    base = sample(components, PROMPTS, settings=SD3).images
    # flow timesteps t = 1000·σ; with shift 3 and 6 steps the window 780 ≤ t ≤ 1000 holds the first steps
    window = [t for t in result.diagnostics[0]["sd_kernel_logmass_steps"]]
    assert 1 <= len(window) < SD3.steps
    assert all(d["sd_gated_steps"] == len(window) for d in result.diagnostics)  # no gate in the release
    assert np.abs(result.images.astype(int) - base.astype(int)).mean() > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sdxl", "sd3"])
@pytest.mark.parametrize("name", ["negative_prompt", "sld", "safree", "safe_denoiser"])
def test_batch_equals_singles_per_family(tiny_family_components, pack, family, name):
    cls = method_class(name)
    overrides = {"gate": False} if name == "safe_denoiser" else None
    method = cls.from_level("max", overrides=overrides, concept=pack)
    settings = SamplerSettings(scheduler="euler", steps=4, guidance=5.0)
    components = tiny_family_components(family)
    requests = [*PROMPTS, Request("a green square", 3)]
    batched = sample(components, requests, method=method, settings=settings).images
    for k, request in enumerate(requests):
        single = sample(components, [request], method=method, settings=settings).images[0]
        worst = int(np.abs(batched[k].astype(int) - single.astype(int)).max())
        assert worst <= cls.batch_tolerance, f"{name} on {family}: request {k} differs by {worst}"
