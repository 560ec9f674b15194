"""The one denoising loop every method runs through.

Stable Diffusion sampling, written out step by step so that a safety method changes exactly one thing:

1. encode prompts (77-token padding, CLIP last hidden state) and the unconditional text ("" or a negative
   prompt) — hook ``SafetyMethod.setup`` may add or replace embeddings;
2. draw the initial noise per (prompt, seed) from its own CPU generator, times the scheduler's
   ``init_noise_sigma`` — the same for every method, so differences come from the method alone;
3. per step: ``unet_inputs`` builds the batched UNet input (branches × requests), one UNet call,
   ``guide`` combines the branch predictions (plain classifier-free guidance by default),
   ``step`` advances the latents (the scheduler step by default; x̂0 / latent edits go here);
4. decode with the VAE to uint8 RGB.

With ``baseline`` this reproduces diffusers' ``StableDiffusionPipeline`` pixel for pixel for the same
components, prompt, seed, scheduler and guidance (tested).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from models.components import Components
    from models.method import SafetyMethod

from models.registry import SCHEDULERS


def make_scheduler(name: str, base_config: dict):
    """A fresh scheduler of the named family, configured from the model's own scheduler config."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        PNDMScheduler,
    )

    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "pndm":
        return PNDMScheduler.from_config(config, skip_prk_steps=True)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


@dataclass(frozen=True)
class SamplerSettings:
    """Everything besides the prompt, seed and method that determines an image."""

    scheduler: str = "ddim"
    steps: int = 20
    guidance: float = 7.5
    height: int = 64
    width: int = 64
    eta: float = 0.0  # DDIM's η; 0 = deterministic
    negative_prompt: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Request:
    """One image: a prompt and the seed of its initial noise (and of any stochastic scheduler steps)."""

    prompt: str
    seed: int


@dataclass
class SampleResult:
    images: np.ndarray  # uint8, N x H x W x 3
    diagnostics: list[dict[str, Any]]  # one dict per image: how hard the method intervened


@dataclass
class Context:
    """What a method sees during one batched sampling call. ``state`` is the method's scratch space,
    fresh for every call, so a method object itself never carries state between batches."""

    components: Components
    settings: SamplerSettings
    requests: list[Request]
    scheduler: Any
    timesteps: torch.Tensor
    generators: list[torch.Generator]
    cond: torch.Tensor | None = None  # (B, 77, D) prompt embeddings
    uncond: torch.Tensor | None = None  # (B, 77, D) unconditional / negative-prompt embeddings
    state: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # the sampler's own per-call memo

    @property
    def batch_size(self) -> int:
        return len(self.requests)

    @property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.requests]

    @property
    def do_cfg(self) -> bool:
        return self.settings.guidance > 1.0

    @property
    def device(self) -> torch.device:
        # read once per call: diffusers' ``module.device`` walks every parameter (ms on a full-size UNet)
        if "_device" not in self.cache:
            self.cache["_device"] = self.components.unet.device
        return self.cache["_device"]

    @property
    def dtype(self) -> torch.dtype:
        if "_dtype" not in self.cache:
            self.cache["_dtype"] = self.components.unet.dtype
        return self.cache["_dtype"]

    @property
    def host_timesteps(self) -> list[float]:
        """The schedule as Python numbers, copied to the host once per call: per-step comparisons and table
        look-ups read this, so the loop never waits on the device for a 0-d timestep (``int(t)``)."""
        if "_host_timesteps" not in self.cache:
            self.cache["_host_timesteps"] = self.timesteps.tolist()
        return self.cache["_host_timesteps"]

    # -- text ----------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        tok = self.components.tokenizer
        ids = tok(
            texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        )
        return ids.input_ids

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """CLIP last hidden state for 77-token padded texts, as Stable Diffusion conditions its UNet."""
        ids = self.tokenize(texts).to(self.device)
        hidden = self.components.text_encoder(ids, attention_mask=None)[0]
        return hidden.to(dtype=self.dtype)

    def encode_rows(self, texts: list[str]) -> torch.Tensor:
        """One embedding row per entry of ``texts``, encoding each distinct text once: B copies of one
        negative prompt cost one text-encoder row, not B. One distinct text comes back as an expanded
        (read-only) view; callers concatenate or index it, never write into it."""
        distinct = list(dict.fromkeys(texts))
        if len(distinct) == len(texts):
            return self.encode(texts)
        hidden = self.encode(distinct)
        if len(distinct) == 1:
            return hidden.expand(len(texts), -1, -1)
        index = torch.tensor([distinct.index(t) for t in texts], device=hidden.device)
        return hidden.index_select(0, index)

    def cfg_text_rows(self) -> torch.Tensor:
        """[c_∅ ; c_p], the text rows of a plain classifier-free-guidance call, concatenated once per call
        (rebuilt only if a hook replaced ``uncond`` or ``cond``)."""
        memo = self.cache.get("_cfg_text")
        if memo is None or memo[0] is not self.uncond or memo[1] is not self.cond:
            memo = (self.uncond, self.cond, torch.cat([self.uncond, self.cond]))
            self.cache["_cfg_text"] = memo
        return memo[2]

    # -- scheduler arithmetic that methods share ---------------------------------------------------------
    def step_kwargs(self) -> dict[str, Any]:
        if "_step_params" not in self.cache:  # inspect once per call, not once per step
            self.cache["_step_params"] = set(inspect.signature(self.scheduler.step).parameters)
        params = self.cache["_step_params"]
        kwargs: dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = self.settings.eta
        if "generator" in params:
            kwargs["generator"] = self.generators
        return kwargs

    def scheduler_step(self, eps: torch.Tensor, t: torch.Tensor, latents: torch.Tensor) -> Any:
        """The scheduler's own step; returns its output (``prev_sample``, maybe ``pred_original_sample``)."""
        return self.scheduler.step(eps, t, latents, **self.step_kwargs(), return_dict=True)

    # ``i`` and ``t`` below are the loop's pair (t = timesteps[i]): the per-step tables are read by the index,
    # from host copies made once per call, so no step waits on the device for a 0-d timestep.
    def _sigma_space(self) -> bool:
        if "_sigma_space" not in self.cache:  # Euler-type: z = x0 + σ·ε
            self.cache["_sigma_space"] = float(self.scheduler.init_noise_sigma) != 1.0
        return self.cache["_sigma_space"]

    def _sigma(self, i: int) -> torch.Tensor:
        return self.scheduler.sigmas[i].to(self.device)

    def _alpha_bar(self, i: int, device: torch.device) -> torch.Tensor:
        """ᾱ_t (float32) at step i on ``device``; moved there once per call and step."""
        memo = self.cache.setdefault("_alpha_bar", {})
        key = (i, device)
        if key not in memo:
            memo[key] = self.scheduler.alphas_cumprod[int(self.host_timesteps[i])].to(device, torch.float32)
        return memo[key]

    def predict_x0(self, latents: torch.Tensor, eps: torch.Tensor, i: int, t: torch.Tensor) -> torch.Tensor:
        """x̂0 from a noise prediction (methods.md §0): (z_t − √(1−ᾱ_t)·ε)/√ᾱ_t, or z − σ·ε for Euler."""
        if self._sigma_space():
            return latents - self._sigma(i) * eps
        a = self._alpha_bar(i, latents.device)
        return ((latents.float() - (1 - a).sqrt() * eps.float()) / a.sqrt()).to(latents.dtype)

    def renoise(self, x0: torch.Tensor, noise: torch.Tensor, i: int, t: torch.Tensor) -> torch.Tensor:
        """z_t from a clean estimate and fresh noise at the same noise level as step i."""
        if self._sigma_space():
            return x0 + self._sigma(i) * noise
        a = self._alpha_bar(i, x0.device)
        return (a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()).to(x0.dtype)


def initial_noise(
    requests: list[Request], shape: tuple[int, int, int]
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Per-request noise from its own seeded CPU generator; the generator then feeds stochastic steps."""
    generators = [torch.Generator("cpu").manual_seed(int(r.seed)) for r in requests]
    noise = torch.cat([torch.randn((1, *shape), generator=g) for g in generators])
    return noise, generators


@torch.no_grad()
def decode(components: Components, latents: torch.Tensor) -> np.ndarray:
    """VAE decode to uint8 RGB, rounding exactly as diffusers' image processor does."""
    image = components.vae.decode(latents / components.scaling_factor, return_dict=False)[0]
    image = (image / 2 + 0.5).clamp(0, 1)
    image = image.cpu().permute(0, 2, 3, 1).float().numpy()
    return (image * 255).round().astype("uint8")


@torch.no_grad()
def sample(
    components: Components,
    requests: list[Request],
    method: SafetyMethod | None = None,
    settings: SamplerSettings | None = None,
) -> SampleResult:
    """Generate one image per request, all requests in one batched UNet call per step."""
    from models.baseline import Baseline

    method = method or Baseline()
    settings = settings or SamplerSettings()
    factor = components.vae_scale_factor
    if settings.height % factor or settings.width % factor:
        raise ValueError(
            f"size {settings.height}x{settings.width} is not a multiple of the VAE factor {factor}"
        )

    scheduler = make_scheduler(settings.scheduler, components.scheduler_config)
    device = components.unet.device  # one walk over the UNet's parameters per call
    scheduler.set_timesteps(settings.steps, device=device)
    shape = (components.unet.config.in_channels, settings.height // factor, settings.width // factor)
    noise, generators = initial_noise(requests, shape)
    ctx = Context(
        components=components,
        settings=settings,
        requests=list(requests),
        scheduler=scheduler,
        timesteps=scheduler.timesteps,
        generators=generators,
        diagnostics=[{} for _ in requests],
    )
    ctx.cache["_device"] = device
    # a prompt over the text encoder's window is cut to it, EOS kept (``Context.tokenize``); each image says so
    tok = components.tokenizer
    for diag, ids in zip(ctx.diagnostics, tok(ctx.prompts, truncation=False).input_ids, strict=True):
        diag["prompt_truncated"] = len(ids) > tok.model_max_length
    # the schedule's host copy, made now while the device has no work queued (steps read it, never int(t))
    ctx.cache["_host_timesteps"] = scheduler.timesteps.tolist()

    # 1. conditioning: prompt and unconditional embeddings; the method may add its own
    ctx.cond = ctx.encode_rows(ctx.prompts)
    if ctx.do_cfg:  # one text-encoder row for the negative prompt, shared by every request
        ctx.uncond = ctx.encode_rows([settings.negative_prompt] * ctx.batch_size)
    method.setup(ctx)

    # 2. shared initial noise (same for every method)
    latents = noise.to(device=ctx.device, dtype=ctx.dtype) * scheduler.init_noise_sigma

    # 3. denoising loop
    with method.unet_hooks(ctx) if hasattr(method, "unet_hooks") else contextlib.nullcontext():
        for i, t in enumerate(ctx.timesteps):
            latent_rows, text_rows = method.unet_inputs(ctx, i, t, latents)
            model_in = scheduler.scale_model_input(latent_rows, t)
            eps_rows = components.unet(model_in, t, encoder_hidden_states=text_rows, return_dict=False)[0]
            eps = method.guide(ctx, i, t, eps_rows)
            latents = method.step(ctx, i, t, latents, eps)

    # 4. decode
    images = decode(components, latents)
    method.finish(ctx)
    return SampleResult(images=images, diagnostics=ctx.diagnostics)
