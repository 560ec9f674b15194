"""The SDXL and SD3 paths of the one sampler: family detection, parity with diffusers' own pipelines, batching,
the flow-matching arithmetic, and the extra-conditioning contract for methods that add text rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.components import ModelLoadError, family_of, resolve_model
from models.registry import METHODS, check_supported, method_class, supports
from models.sampler import Request, SamplerSettings, make_scheduler, sample

PROMPT = "a photo of a cat"


def grey(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- family detection (no weights) ----------------------------------------------------------------------
def test_family_of_builtins_folders_and_hub_names(tmp_path):
    assert [
        family_of(m) for m in ("builtin:tiny", "builtin:toy", "builtin:tiny-sdxl", "builtin:tiny-sd3")
    ] == [
        "sd",
        "sd",
        "sdxl",
        "sd3",
    ]
    for name, family in [
        ("StableDiffusionXLPipeline", "sdxl"),
        ("StableDiffusion3Pipeline", "sd3"),
        ("StableDiffusionPipeline", "sd"),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model_index.json").write_text(json.dumps({"_class_name": name}))
        assert family_of(str(folder)) == family  # no weights in the folder: only the index is read
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelLoadError, match="FluxPipeline"):
        family_of(str(odd))
    # uncached hub ids fall back to their names
    assert family_of("stabilityai/stable-diffusion-3-medium-diffusers") == "sd3"
    assert family_of("stabilityai/stable-diffusion-xl-base-1.0") == "sdxl"
    assert family_of("CompVis/stable-diffusion-v1-4") == "sd"


def test_components_know_their_family(tiny_family_components):
    for family in ("sd", "sdxl", "sd3"):
        c = tiny_family_components(family)
        assert c.family == family
    sd3 = tiny_family_components("sd3")
    assert sd3.text_encoder_3 is None and sd3.unet.config.in_channels == 16 and sd3.shift_factor != 0.0


# -- parity with diffusers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diffusers_pipes():
    """family → diffusers' own pipeline on the same built-in folder (loaded lazily, once)."""
    from diffusers import StableDiffusion3Pipeline, StableDiffusionXLPipeline

    pipes: dict = {}

    def get(family: str):
        if family not in pipes:
            folder = str(resolve_model(f"builtin:tiny-{family}")[1])
            if family == "sdxl":
                pipe = StableDiffusionXLPipeline.from_pretrained(folder, add_watermarker=False)
            else:
                pipe = StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)
            pipe.set_progress_bar_config(disable=True)
            pipes[family] = pipe
        return pipes[family]

    return get


@pytest.mark.parametrize(
    ("family", "scheduler", "guidance", "negative"),
    [
        (
            "sdxl",
            "euler",
            5.0,
            None,
        ),  # SDXL's own scheduler; empty negative → zeros (force_zeros_for_empty_prompt)
        ("sdxl", "ddim", 7.5, "blurry"),  # a real negative prompt through both encoders + pooled
        ("sd3", "euler", 7.0, None),  # flow-matching Euler with shift 3, no T5 (zeros)
        ("sd3", "euler", 2.5, "blurry"),
    ],
)
def test_baseline_equals_diffusers_pipeline(
    tiny_family_components, diffusers_pipes, family, scheduler, guidance, negative
):
    # Exact (0 grey levels): the same float ops in the same order; no tolerance is needed on CPU float32.
    components = tiny_family_components(family)
    settings = SamplerSettings(
        scheduler=scheduler, steps=4, guidance=guidance, height=64, width=64, negative_prompt=negative or ""
    )
    ours = sample(components, [Request(PROMPT, 3)], settings=settings).images[0]
    pipe = diffusers_pipes(family)
    pipe.scheduler = make_scheduler(scheduler, components.scheduler_config)
    ref = pipe(
        PROMPT,
        negative_prompt=negative,
        num_inference_steps=4,
        guidance_scale=guidance,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="np",
    ).images[0]
    ref = (ref * 255).round().astype("uint8")
    assert ours.std() > 5  # a real image, not a constant one that would match anything
    assert grey(ours, ref) == 0


@pytest.mark.parametrize("family", ["sdxl", "sd3"])
def test_batched_equals_one_at_a_time(tiny_family_components, family):
    components = tiny_family_components(family)
    settings = SamplerSettings(scheduler="euler", steps=3, guidance=5.0)
    requests = [Request(PROMPT, 3), Request("a red car", 4), Request(PROMPT, 5)]
    batched = sample(components, requests, settings=settings).images
    for k, request in enumerate(requests):
        single = sample(components, [request], settings=settings).images[0]
        assert grey(batched[k], single) <= 1  # batched float kernels may round differently
    assert np.abs(batched[0].astype(int) - batched[2].astype(int)).mean() > 1.0  # seeds differ


def test_noise_contract_per_prompt_and_seed(tiny_family_components):
    """The same (prompt, seed) gives the same initial noise whatever else is in the batch; the noise has
    the denoiser's latent channels (16 for SD3)."""
    from models.sampler import initial_noise

    a, _ = initial_noise([Request("x", 7), Request("y", 8)], (16, 8, 8))
    b, _ = initial_noise([Request("y", 8)], (16, 8, 8))
    assert torch.equal(a[1], b[0]) and a.shape == (2, 16, 8, 8)


# -- flow-matching arithmetic ---------------------------------------------------------------------------
def _flow_ctx(components, steps=4):
    from models.sampler import Context

    scheduler = make_scheduler("euler", components.scheduler_config)
    scheduler.set_timesteps(steps)
    return Context(
        components=components,
        settings=SamplerSettings(scheduler="euler", steps=steps),
        requests=[Request("x", 0)],
        scheduler=scheduler,
        timesteps=scheduler.timesteps,
        generators=[torch.Generator().manual_seed(0)],
    )


def test_flow_predict_x0_and_renoise(tiny_family_components):
    ctx = _flow_ctx(tiny_family_components("sd3"))
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(1, 16, 8, 8, generator=gen), torch.randn(1, 16, 8, 8, generator=gen)
    for i in range(len(ctx.timesteps)):
        sigma = float(ctx.scheduler.sigmas[i])
        z = ctx.renoise(x0, noise, i, ctx.timesteps[i])
        torch.testing.assert_close(z, (1 - sigma) * x0 + sigma * noise)  # x = (1−σ)x0 + σ·noise
        v = noise - x0  # the flow velocity the model predicts
        torch.testing.assert_close(ctx.predict_x0(z, v, i, ctx.timesteps[i]), x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ctx.predict_noise(z, v, i, ctx.timesteps[i]), noise, atol=1e-5, rtol=1e-5)
    # the scheduler's own Euler step agrees with x0/noise algebra: z_next = (1−σ')x0 + σ'·noise
    z = ctx.renoise(x0, noise, 0, ctx.timesteps[0])
    nxt = ctx.scheduler.step(noise - x0, ctx.timesteps[0], z).prev_sample
    s1 = float(ctx.scheduler.sigmas[1])
    torch.testing.assert_close(nxt, (1 - s1) * x0 + s1 * noise, atol=1e-5, rtol=1e-5)


def test_sd3_refuses_ddpm_family_schedulers(tiny_family_components):
    with pytest.raises(ValueError, match="flow-matching"):
        sample(tiny_family_components("sd3"), [Request("x", 0)], settings=SamplerSettings(scheduler="ddim"))


# -- the extra-conditioning contract ----------------------------------------------------------------------
def test_text_rows_without_pooled_rows_are_refused(tiny_family_components):
    """A method that builds its own text rows on SDXL must say which pooled rows go with them."""
    from models.method import SafetyMethod

    class ExtraRow(SafetyMethod):
        name = "extra_row"
        FAMILIES = {"sd": "ours", "sdxl": "ours"}

        def unet_inputs(self, ctx, i, t, latents):
            return torch.cat([latents, latents]), torch.cat([ctx.uncond, ctx.cond * 1.0])

    settings = SamplerSettings(scheduler="euler", steps=2)
    sample(tiny_family_components("sd"), [Request("x", 0)], method=ExtraRow(), settings=settings)  # sd: fine
    with pytest.raises(ValueError, match="extra conditioning"):
        sample(tiny_family_components("sdxl"), [Request("x", 0)], method=ExtraRow(), settings=settings)


def test_replaced_uncond_keeps_its_pooled_rows(tiny_family_components):
    """``ctx.uncond = ctx.encode_rows(...)`` (negative_prompt, SAFREE) carries the pooled rows along; an
    unknown tensor makes the pooled rows unknown instead of silently stale."""
    ctx = _flow_ctx(tiny_family_components("sd3"))
    ctx.uncond = ctx.encode_rows(["blurry"])
    _, pooled = ctx.encode_pooled(["blurry"])
    torch.testing.assert_close(ctx.pooled("uncond"), pooled)
    ctx.uncond = ctx.uncond * 1.0
    with pytest.raises(ValueError, match="unknown pooled"):
        ctx.pooled("uncond")


def test_sd3_token_states_are_padded_clip_then_t5_zeros(tiny_family_components):
    ctx = _flow_ctx(tiny_family_components("sd3"))
    hidden, pooled = ctx.encode_pooled([PROMPT])
    c = ctx.components
    clip = c.text_encoder.config.hidden_size + c.text_encoder_2.config.hidden_size
    assert hidden.shape == (1, 77 + 256, c.unet.config.joint_attention_dim)
    assert pooled.shape == (1, c.text_encoder.config.projection_dim + c.text_encoder_2.config.projection_dim)
    assert hidden[:, :77, :clip].abs().sum() > 0
    assert hidden[:, :77, clip:].abs().sum() == 0 and hidden[:, 77:].abs().sum() == 0


# -- method × family support ------------------------------------------------------------------------------
def test_every_method_declares_families():
    for name in METHODS:
        families = method_class(name).FAMILIES
        assert families and set(families) <= {"sd", "sdxl", "sd3"}, name
        assert set(families.values()) <= {"release", "ours"}, name
        assert families.get("sd") is not None, name  # every method runs on SD
    assert supports("sld", "sd3") and supports("safree", "sdxl") and not supports("dual_latent", "sdxl")
    with pytest.raises(ValueError, match="'dual_latent' does not support model family 'sd3'"):
        check_supported("dual_latent", "sd3")


def test_unsupported_pair_is_refused_before_sampling(tiny_family_components, pack):
    method = method_class("dual_latent").from_level("max", concept=pack)
    with pytest.raises(ValueError, match="does not support model family 'sdxl'"):
        sample(tiny_family_components("sdxl"), [Request("x", 0)], method=method, settings=SamplerSettings())
