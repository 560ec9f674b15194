"""SAFREE on SDXL and SD3 touches what the release touches: encoder 2's channels of the prompt's 77 CLIP
positions (SDXL: the release's ``[..., 768:]`` slice; SD3: our CLIP-G adaptation), never encoder 1's channels,
the T5 positions, the negative branch or the pooled embeds (models/families.py)."""

from __future__ import annotations

import pytest
import torch

from models.registry import method_class
from models.sampler import Request, SamplerSettings, sample

SEEN: list = []


@pytest.fixture(scope="module")
def captured(tiny_family_components, pack):
    """family → (ctx.cond, SAFREE's safe states, the UNet's extra rows at step 0) from one SAFREE `max` call."""
    base = method_class("safree")

    class Capture(base):
        def unet_inputs(self, ctx, i, t, latents):
            rows = super().unet_inputs(ctx, i, t, latents)
            if i == 0:
                SEEN.append((ctx.family, ctx.cond.clone(), ctx.state["safree"]["safe"].clone(), rows[2]))
            return rows

    out = {}
    for family in ("sdxl", "sd3"):
        method = Capture.from_level("max", concept=pack)
        settings = SamplerSettings(scheduler="euler", steps=2, guidance=5.0)
        sample(
            tiny_family_components(family), [Request("a red circle on a red background", 1)], method, settings
        )
        out[family] = SEEN.pop()
    return out


@pytest.mark.parametrize("family", ["sdxl", "sd3"])
def test_only_encoder_2_channels_of_clip_positions_change(captured, tiny_family_components, family):
    c = tiny_family_components(family)
    _, cond, safe, _ = captured[family]
    w1, w2 = c.text_encoder.config.hidden_size, c.text_encoder_2.config.hidden_size
    assert torch.equal(safe[..., :w1], cond[..., :w1])  # encoder 1 untouched
    assert torch.equal(safe[:, 77:], cond[:, 77:])  # SD3's T5 part (zeros here) untouched
    assert torch.equal(safe[..., w1 + w2 :], cond[..., w1 + w2 :])  # SD3's zero padding untouched
    changed = (safe[:, :77, w1 : w1 + w2] != cond[:, :77, w1 : w1 + w2]).any(dim=-1)
    assert changed.any(), "no trigger position was projected (max: α = 0)"
    assert not changed[:, 0].any()  # BOS never a trigger


@pytest.mark.parametrize("family", ["sdxl", "sd3"])
def test_pooled_embeds_are_the_prompts(captured, tiny_family_components, family, pack):
    """The extra rows are [negative prompt ; prompt] pooled embeds, unprojected (as released)."""
    from models.sampler import Context

    c = tiny_family_components(family)
    _, _, _, extra = captured[family]
    pooled = extra["added_cond_kwargs"]["text_embeds"] if family == "sdxl" else extra["pooled_projections"]
    ctx = Context(
        components=c,
        settings=SamplerSettings(),
        requests=[],
        scheduler=None,
        timesteps=torch.zeros(1),
        generators=[],
    )
    negative = method_class("safree").from_level("max", concept=pack).negative_text
    _, expect = ctx.encode_pooled([negative, "a red circle on a red background"])
    torch.testing.assert_close(pooled, expect)
    if family == "sdxl":
        assert extra["added_cond_kwargs"]["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]] * 2


def test_official_sdxl_is_the_release_sdxl_setting(tiny_family_components, pack):
    """The SDXL release: no SVF (projected states at every step), α 0.01, the keyword negative prompt, and two
    UNet rows per step (its SDXL pipeline batches uncond + cond only: no LRA row)."""
    method = method_class("safree").from_level("official_sdxl", concept=pack)
    cfg = method.config
    assert (cfg.svf, cfg.alpha, cfg.negative_prompt, cfg.lra) == (False, 0.01, True, "off")
    assert method.describe()["notes"]["official_sdxl"].startswith("release on sdxl")
    rows_per_step: list[int] = []
    steps_filtered: list[bool] = []
    base = method_class("safree")

    class Count(base):
        def unet_inputs(self, ctx, i, t, latents):
            rows = super().unet_inputs(ctx, i, t, latents)
            rows_per_step.append(rows[0].shape[0])
            steps_filtered.append(not torch.equal(rows[1][-1:], ctx.cond[-1:]))
            return rows

    counted = Count.from_level("official_sdxl", concept=pack)
    settings = SamplerSettings(scheduler="ddim", steps=4, guidance=5.0)
    sample(
        tiny_family_components("sdxl"), [Request("a red circle on a red background", 1)], counted, settings
    )
    assert rows_per_step == [2, 2, 2, 2]
    assert all(steps_filtered), "the release projects at every step on SDXL"
