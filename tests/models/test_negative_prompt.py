"""negative_prompt: the pack's keywords as c_∅ equal diffusers' ``negative_prompt=``; off is the baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.negative_prompt import NegativePrompt
from models.sampler import Request, SamplerSettings, make_scheduler, sample

PROMPT, SEED = "a red sports car", 7
SETTINGS = SamplerSettings(scheduler="ddim", steps=8, guidance=7.5, height=64, width=64)


@pytest.fixture(scope="module")
def pipe(tiny_components):
    from diffusers import StableDiffusionPipeline

    c = tiny_components
    pipe = StableDiffusionPipeline(
        vae=c.vae,
        text_encoder=c.text_encoder,
        tokenizer=c.tokenizer,
        unet=c.unet,
        scheduler=make_scheduler("ddim", c.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, negative_prompt: str | None) -> np.ndarray:
    image = pipe(
        PROMPT,
        negative_prompt=negative_prompt,
        num_inference_steps=SETTINGS.steps,
        guidance_scale=SETTINGS.guidance,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="np",
    ).images[0]
    return (image * 255).round().astype("uint8")


@pytest.mark.parametrize("level", ["weak", "max"])
def test_equals_diffusers_negative_prompt(tiny_components, pipe, pack, level):
    method = NegativePrompt.from_level(level, concept=pack)
    assert method.negative_text == ", ".join(pack.negative_prompt_levels[level])
    ours = sample(tiny_components, [Request(PROMPT, SEED)], method=method, settings=SETTINGS).images[0]
    np.testing.assert_array_equal(ours, reference(pipe, method.negative_text))
    assert not np.array_equal(ours, reference(pipe, None))  # the keywords do change the image


def test_off_is_baseline(tiny_components, pack):
    base = sample(tiny_components, [Request(PROMPT, SEED)], settings=SETTINGS).images
    for method in (
        NegativePrompt.from_level("off", concept=pack),
        NegativePrompt.from_level(knob=0, concept=pack),
    ):
        assert method.is_off and method.concept_fields() == {}
        np.testing.assert_array_equal(
            sample(tiny_components, [Request(PROMPT, SEED)], method=method, settings=SETTINGS).images, base
        )


def test_knob_takes_the_first_keywords_of_max(pack):
    full = pack.negative_prompt_levels["max"]
    assert NegativePrompt.from_level(knob=2, concept=pack).keywords() == full[:2]
    assert NegativePrompt.from_level(knob=100, concept=pack).keywords() == full
    with pytest.raises(ValueError, match="whole number"):
        NegativePrompt.from_level(knob=1.5, concept=pack)


def test_negative_string_is_recorded(pack):
    method = NegativePrompt.from_level("strong", concept=pack)
    expected = ", ".join(pack.negative_prompt_levels["strong"])
    assert method.resolved_config()["concept"] == {"negative_prompt": expected}


def test_sampler_negative_prompt_is_kept(tiny_components, pipe, pack):
    settings = SamplerSettings(**{**SETTINGS.as_dict(), "negative_prompt": "blurry"})
    method = NegativePrompt.from_level("weak", concept=pack)
    ours = sample(tiny_components, [Request(PROMPT, SEED)], method=method, settings=settings).images[0]
    np.testing.assert_array_equal(ours, reference(pipe, "blurry, " + method.negative_text))


def test_needs_a_pack():
    with pytest.raises(ValueError, match="concept pack"):
        NegativePrompt.from_level("medium").keywords()
