"""The shared sampler: baseline parity with diffusers, determinism, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.sampler import Request, SamplerSettings, make_scheduler, sample


@pytest.fixture(scope="module")
def diffusers_pipe(tiny_model_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(tiny_model_dir), safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "pndm", "ddpm", "euler"])
def test_baseline_equals_diffusers_pipeline(tiny_components, diffusers_pipe, scheduler):
    settings = SamplerSettings(scheduler=scheduler, steps=6, guidance=7.5, height=64, width=64)
    ours = sample(tiny_components, [Request("a photo of a cat", 3)], settings=settings).images[0]
    diffusers_pipe.scheduler = make_scheduler(scheduler, tiny_components.scheduler_config)
    ref = diffusers_pipe(
        "a photo of a cat",
        num_inference_steps=6,
        guidance_scale=7.5,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="np",
    ).images[0]
    ref = (ref * 255).round().astype("uint8")
    np.testing.assert_array_equal(ours, ref)


def test_negative_prompt_matches_diffusers(tiny_components, diffusers_pipe):
    settings = SamplerSettings(scheduler="ddim", steps=4, negative_prompt="blurry")
    ours = sample(tiny_components, [Request("a dog", 11)], settings=settings).images[0]
    diffusers_pipe.scheduler = make_scheduler("ddim", tiny_components.scheduler_config)
    ref = diffusers_pipe(
        "a dog",
        negative_prompt="blurry",
        num_inference_steps=4,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(11),
        output_type="np",
    ).images[0]
    np.testing.assert_array_equal(ours, (ref * 255).round().astype("uint8"))


def test_same_seed_same_image_and_seeds_differ(tiny_components):
    settings = SamplerSettings(steps=4)
    a = sample(tiny_components, [Request("a cat", 1), Request("a cat", 2)], settings=settings).images
    b = sample(tiny_components, [Request("a cat", 1)], settings=settings).images
    assert np.abs(a[0].astype(int) - b[0].astype(int)).max() <= 1  # batched kernels may round differently
    assert np.abs(a[0].astype(int) - a[1].astype(int)).mean() > 1.0


def test_batched_equals_single_within_one_grey_level(tiny_components):
    settings = SamplerSettings(scheduler="ddpm", steps=4)
    reqs = [Request(p, s) for p, s in [("a cat", 1), ("a red car", 2), ("a house", 3)]]
    batched = sample(tiny_components, reqs, settings=settings).images
    for k, r in enumerate(reqs):
        single = sample(tiny_components, [r], settings=settings).images[0]
        assert np.abs(batched[k].astype(int) - single.astype(int)).max() <= 1


def test_size_must_match_vae_factor(tiny_components):
    with pytest.raises(ValueError, match="multiple of the VAE factor"):
        sample(tiny_components, [Request("x", 0)], settings=SamplerSettings(height=60))
