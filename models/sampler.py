"""The one denoising loop every method runs through, for the SD, SDXL and SD3 families.

Sampling, written out step by step so that a safety method changes exactly one thing:

1. encode prompts and the unconditional text ("" or a negative prompt) — hook ``SafetyMethod.setup`` may
   add or replace embeddings. Per family (``ctx.family``):
   - sd:   CLIP last hidden state, 77-token padding;
   - sdxl: the penultimate hidden states of both CLIP encoders, concatenated on channels; the pooled
     (projected) output of encoder 2; micro-conditioning time ids (original size, crop (0, 0), target
     size). An empty negative prompt is zeros when the model says so (``force_zeros_for_empty_prompt``);
   - sd3:  CLIP-L and CLIP-G penultimate states, concatenated and zero-padded to the joint dim, then the
     T5 states (zeros when the model has no T5) appended on the sequence; pooled = both projections;
   every text row has its *extra conditioning* (pooled embeds, time ids), built per row by
   ``Context.extra_rows`` so that a method that adds a text row (SLD's concept) adds its pooled row too;
2. draw the initial noise per (prompt, seed) from its own CPU generator, shaped by the denoiser's latent
   channels, times the scheduler's ``init_noise_sigma`` — the same for every method, so differences come
   from the method alone;
3. per step: ``unet_inputs`` builds the batched denoiser input (branches × requests) and its extra
   conditioning, one denoiser call, ``guide`` combines the branch predictions (classifier-free guidance by
   default), ``step`` advances the latents (the scheduler step by default; x̂0 / latent edits go here).
   The prediction is ε for sd/sdxl and the flow velocity v = noise − x0 for sd3; ``predict_x0`` and
   ``renoise`` are written for both, so a method that edits x̂0 is written once;
4. decode with the VAE (SD3: ``latents / scale + shift``) to uint8 RGB.

With ``baseline`` this reproduces diffusers' ``StableDiffusionPipeline``, ``StableDiffusionXLPipeline`` and
``StableDiffusion3Pipeline`` for the same components, prompt, seed, scheduler and guidance (tested).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

    from models.components import Components
    from models.method import SafetyMethod

from models.registry import SCHEDULERS

_UNKNOWN = object()  # pooled rows of token states the sampler did not encode


FLOW_SCHEDULERS = ("euler",)  # flow-matching models (SD3): Euler on the flow ODE, with the model's shift


def is_flow_config(base_config: dict) -> bool:
    return str(base_config.get("_class_name", "")).startswith("FlowMatch")


def make_scheduler(name: str, base_config: dict) -> SchedulerMixin:
    """A fresh scheduler of the named family, configured from the model's own scheduler config.

    A flow-matching model (SD3) has one: ``euler`` is then ``FlowMatchEulerDiscreteScheduler`` with the
    model's shift; the DDPM-family names (ddim, dpm++, pndm, ddpm) are refused for it."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
        PNDMScheduler,
    )

    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    if is_flow_config(base_config):
        if name not in FLOW_SCHEDULERS:
            raise ValueError(
                f"scheduler {name!r} does not apply to a flow-matching model (sd3); choose one of "
                f"{', '.join(FLOW_SCHEDULERS)}"
            )
        return FlowMatchEulerDiscreteScheduler.from_config(config)
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
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # the sampler's own per-call memo
    cond: torch.Tensor | None = None  # (B, L, D) prompt token states (L = 77; sd3: 77 + T5 length)
    uncond: torch.Tensor | None = None  # (B, L, D) unconditional / negative-prompt token states
    state: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    # The pooled rows that belong to ``cond`` / ``uncond`` (sdxl, sd3; None for sd). Kept in step with them:
    # assigning ``ctx.uncond = ctx.encode_rows(...)`` also sets ``ctx.uncond_pooled`` (see __setattr__).
    cond_pooled: Any = field(default=None, init=False)
    uncond_pooled: Any = field(default=None, init=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in ("cond", "uncond") and value is not None and "cache" in self.__dict__:
            # the pooled rows travel with the token states they were encoded with; a tensor the sampler did
            # not encode has unknown pooled rows (reading them on sdxl/sd3 is an error, not a silent guess)
            hit = self.cache.get("_pooled_of", {}).get(id(value))
            pooled = hit[1] if hit is not None and hit[0] is value else _UNKNOWN
            object.__setattr__(self, name + "_pooled", pooled)

    @property
    def family(self) -> str:
        """'sd' | 'sdxl' | 'sd3': which model family this call runs on."""
        return self.components.family

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
    def tokenize(self, texts: list[str], tokenizer: Any = None) -> torch.Tensor:
        tok = tokenizer or self.components.tokenizer
        ids = tok(
            texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        )
        return ids.input_ids

    @torch.no_grad()
    def _clip_penultimate(self, tokenizer: Any, encoder: Any, texts: list[str]) -> tuple[torch.Tensor, Any]:
        """(penultimate hidden states, pooled output) of one CLIP encoder; pooled is the projected EOS state
        of a ``CLIPTextModelWithProjection`` (SDXL encoder 2, both SD3 encoders), else None."""
        out = encoder(self.tokenize(texts, tokenizer).to(self.device), output_hidden_states=True)
        pooled = getattr(out, "text_embeds", None)
        return out.hidden_states[-2], pooled

    @torch.no_grad()
    def encode_pooled(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(token states, pooled rows) for 77-token padded texts, as the family conditions its denoiser."""
        c = self.components
        if self.family == "sd":
            ids = self.tokenize(texts).to(self.device)
            return c.text_encoder(ids, attention_mask=None)[0].to(dtype=self.dtype), None
        h1, p1 = self._clip_penultimate(c.tokenizer, c.text_encoder, texts)
        h2, p2 = self._clip_penultimate(c.tokenizer_2, c.text_encoder_2, texts)
        hidden = torch.cat([h1, h2], dim=-1)
        if self.family == "sdxl":
            return hidden.to(self.dtype), p2.to(self.dtype)  # pooled: encoder 2's projection only
        from models.families import sd3_t5_states

        t5 = sd3_t5_states(self, texts)  # (B, T, joint): T5's states, or zeros without T5
        hidden = torch.nn.functional.pad(hidden, (0, t5.shape[-1] - hidden.shape[-1]))  # zero-pad channels
        return torch.cat([hidden.to(t5.dtype), t5], dim=-2).to(self.dtype), torch.cat([p1, p2], -1).to(
            self.dtype
        )

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Token states for 77-token padded texts (sd: CLIP last hidden state; see ``encode_pooled``)."""
        return self.encode_pooled(texts)[0]

    def _remember_pooled(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        self.cache.setdefault("_pooled_of", {})[id(hidden)] = (hidden, pooled)
        return hidden

    def encode_rows_pooled(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(token states, pooled) with one row per entry of ``texts``, each distinct text encoded once: B
        copies of one negative prompt cost one text-encoder row, not B. One distinct text comes back as an
        expanded (read-only) view; callers concatenate or index it, never write into it."""
        distinct = list(dict.fromkeys(texts))
        if len(distinct) == len(texts):
            hidden, pooled = self.encode_pooled(texts)
        else:
            hidden, pooled = self.encode_pooled(distinct)
            if len(distinct) == 1:
                hidden = hidden.expand(len(texts), -1, -1)
                pooled = None if pooled is None else pooled.expand(len(texts), -1)
            else:
                index = torch.tensor([distinct.index(t) for t in texts], device=hidden.device)
                hidden = hidden.index_select(0, index)
                pooled = None if pooled is None else pooled.index_select(0, index)
        return self._remember_pooled(hidden, pooled), pooled

    def encode_rows(self, texts: list[str]) -> torch.Tensor:
        """Token states, one row per text (see ``encode_rows_pooled``); the pooled rows are remembered, so
        ``ctx.uncond = ctx.encode_rows(...)`` keeps ``ctx.uncond_pooled`` right on every family."""
        return self.encode_rows_pooled(texts)[0]

    def encode_negative_rows(self, texts: list[str]) -> torch.Tensor:
        """The unconditional rows of classifier-free guidance: like ``encode_rows``, except that SDXL's
        empty negative prompt is zeros (token states and pooled) when the model's pipeline says
        ``force_zeros_for_empty_prompt`` (SDXL base does; diffusers' default call)."""
        zeros = self.family == "sdxl" and self.components.pipeline_config.get("force_zeros_for_empty_prompt")
        if not zeros or any(texts):
            return self.encode_rows(texts)
        memo = self.cache.get("_zero_uncond")
        if memo is None or memo[0].shape[0] != len(texts):
            # shapes from the prompt rows (encoded first): zeros cost no text-encoder pass
            hidden = torch.zeros_like(self.cond[:1]).expand(len(texts), -1, -1)
            pooled = torch.zeros_like(self.pooled("cond")[:1]).expand(len(texts), -1)
            memo = (self._remember_pooled(hidden, pooled), pooled)
            self.cache["_zero_uncond"] = memo
        return memo[0]

    def cfg_text_rows(self) -> torch.Tensor:
        """[c_∅ ; c_p], the text rows of a plain classifier-free-guidance call, concatenated once per call
        (rebuilt only if a hook replaced ``uncond`` or ``cond``)."""
        memo = self.cache.get("_cfg_text")
        if memo is None or memo[0] is not self.uncond or memo[1] is not self.cond:
            memo = (self.uncond, self.cond, torch.cat([self.uncond, self.cond]))
            self.cache["_cfg_text"] = memo
        return memo[2]

    # -- extra (non-token) conditioning, per text row ------------------------------------------------------
    def pooled(self, which: str) -> torch.Tensor | None:
        """``ctx.cond_pooled`` or ``ctx.uncond_pooled``, refusing rows whose pooled embeds are unknown (a hook
        assigned token states the sampler did not encode: use ``encode_rows`` or set ``*_pooled`` too)."""
        value = getattr(self, which + "_pooled")
        if value is _UNKNOWN:
            if self.family == "sd":
                return None
            raise ValueError(
                f"ctx.{which} was replaced by token states of unknown pooled embeddings on family "
                f"{self.family!r}: build it with ctx.encode_rows(...) or set ctx.{which}_pooled as well"
            )
        return value

    def time_ids(self) -> torch.Tensor:
        """SDXL micro-conditioning for one row: (original H, W, crop top, left, target H, W), with the
        original and target size = the generated size and crop (0, 0)."""
        if "_time_ids" not in self.cache:
            s = self.settings
            ids = torch.tensor([[s.height, s.width, 0, 0, s.height, s.width]], dtype=self.dtype)
            self.cache["_time_ids"] = ids.to(self.device)
        return self.cache["_time_ids"]

    def extra_rows(self, pooled_groups: list[torch.Tensor | None]) -> dict[str, Any]:
        """The denoiser's extra conditioning for text rows built from these groups, in the same order:
        the groups' pooled rows concatenated (sdxl: + one time-id row each). ``{}`` on sd. A method that adds
        text rows passes the pooled rows of what it added (e.g. SLD: [uncond, cond, concept])."""
        if self.family == "sd":
            return {}
        if any(p is None for p in pooled_groups):
            raise ValueError(f"a text-row group has no pooled embeddings on family {self.family!r}")
        pooled = torch.cat(pooled_groups)
        if self.family == "sdxl":
            ids = self.time_ids().expand(pooled.shape[0], -1)
            return {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids}}
        return {"pooled_projections": pooled}

    def cfg_extra_rows(self) -> dict[str, Any]:
        """``extra_rows`` for the plain CFG batch [c_∅ ; c_p] (or [c_p] without CFG), once per call."""
        if self.family == "sd":
            return {}
        key = (self.uncond if self.do_cfg else None, self.cond)
        memo = self.cache.get("_cfg_extra")
        if memo is None or memo[0] is not key[0] or memo[1] is not key[1]:
            groups = [self.pooled("uncond"), self.pooled("cond")] if self.do_cfg else [self.pooled("cond")]
            memo = (key[0], key[1], self.extra_rows(groups))
            self.cache["_cfg_extra"] = memo
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
    def is_flow(self) -> bool:
        """Flow matching (sd3): z_σ = (1 − σ)·x0 + σ·noise and the model predicts v = noise − x0."""
        if "_flow" not in self.cache:
            self.cache["_flow"] = type(self.scheduler).__name__.startswith("FlowMatch")
        return self.cache["_flow"]

    def _sigma_space(self) -> bool:
        if "_sigma_space" not in self.cache:  # Euler-type: z = x0 + σ·ε
            init = float(getattr(self.scheduler, "init_noise_sigma", 1.0))
            self.cache["_sigma_space"] = not self.is_flow() and init != 1.0
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
        """x̂0 from the model's prediction (docs/specs/methods.md §0): (z_t − √(1−ᾱ_t)·ε)/√ᾱ_t, z − σ·ε for Euler, and
        z − σ·v for flow matching (z = (1−σ)x0 + σ·n and v = n − x0 give z − σv = x0)."""
        if self.is_flow() or self._sigma_space():
            return latents - self._sigma(i) * eps
        a = self._alpha_bar(i, latents.device)
        return ((latents.float() - (1 - a).sqrt() * eps.float()) / a.sqrt()).to(latents.dtype)

    def predict_noise(
        self, latents: torch.Tensor, eps: torch.Tensor, i: int, t: torch.Tensor
    ) -> torch.Tensor:
        """The noise estimate n̂ behind a prediction: ε itself for ε-models; z + (1 − σ)·v for flow matching
        (so ``renoise(predict_x0(z), predict_noise(z)) == z`` on every family)."""
        if self.is_flow():
            return latents + (1 - self._sigma(i)) * eps
        return eps

    def renoise(self, x0: torch.Tensor, noise: torch.Tensor, i: int, t: torch.Tensor) -> torch.Tensor:
        """z_t from a clean estimate and (fresh or estimated) noise at the same noise level as step i."""
        if self.is_flow():
            sigma = self._sigma(i)
            return (1 - sigma) * x0 + sigma * noise
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
    """VAE decode to uint8 RGB, rounding exactly as diffusers' image processor does. Latents are unscaled per
    the VAE's convention: z/scale (sd, sdxl), z/scale + shift (sd3), z·std/scale + mean where the VAE states
    per-channel statistics (some SDXL VAEs)."""
    config = components.vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        view = (1, -1, 1, 1)
        mean_t = torch.tensor(mean).view(view).to(latents.device, latents.dtype)
        std_t = torch.tensor(std).view(view).to(latents.device, latents.dtype)
        latents = latents * std_t / components.scaling_factor + mean_t
    else:
        latents = latents / components.scaling_factor + components.shift_factor
    image = components.vae.decode(latents, return_dict=False)[0]
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
    family = components.family
    problem = method.family_error(family)  # refused before any work: never baseline images under its name
    if problem:
        raise ValueError(problem)
    factor = components.vae_scale_factor
    patch = int(getattr(components.unet.config, "patch_size", None) or 1)  # sd3: the transformer's patches
    if settings.height % (factor * patch) or settings.width % (factor * patch):
        raise ValueError(
            f"size {settings.height}x{settings.width} is not a multiple of the VAE factor {factor}"
            + (f" × patch size {patch}" if patch > 1 else "")
        )

    scheduler = make_scheduler(settings.scheduler, components.scheduler_config)
    device = components.unet.device  # one walk over the denoiser's parameters per call
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

    # 1. conditioning: prompt and unconditional embeddings (+ pooled rows); the method may add its own
    ctx.cond = ctx.encode_rows(ctx.prompts)
    if ctx.do_cfg:  # one text-encoder row for the negative prompt, shared by every request
        ctx.uncond = ctx.encode_negative_rows([settings.negative_prompt] * ctx.batch_size)
    method.setup(ctx)

    # 2. shared initial noise (same for every method)
    init_sigma = getattr(scheduler, "init_noise_sigma", 1.0)  # flow matching starts at σ = 1: pure noise
    latents = noise.to(device=ctx.device, dtype=ctx.dtype) * init_sigma

    # 3. denoising loop
    with method.unet_hooks(ctx) if hasattr(method, "unet_hooks") else contextlib.nullcontext():
        for i, t in enumerate(ctx.timesteps):
            latent_rows, text_rows, extra = _rows(ctx, method, method.unet_inputs(ctx, i, t, latents))
            pred_rows = denoise(components, scheduler, latent_rows, t, text_rows, extra, family)
            eps = method.guide(ctx, i, t, pred_rows)
            latents = method.step(ctx, i, t, latents, eps)

    # 4. decode
    images = decode(components, latents)
    method.finish(ctx)
    return SampleResult(images=images, diagnostics=ctx.diagnostics)


def _rows(ctx: Context, method: Any, rows: tuple) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(latent rows, text rows, extra conditioning) from ``unet_inputs``. A 2-tuple (a method written before
    the families) is accepted where no extra conditioning is needed, or where its text rows are exactly the
    plain CFG batch; anything else on sdxl/sd3 is refused rather than paired with guessed pooled rows."""
    if len(rows) == 3:
        return rows
    latent_rows, text_rows = rows
    if ctx.family == "sd":
        return latent_rows, text_rows, {}
    if text_rows is ctx.cond and not ctx.do_cfg:
        return latent_rows, text_rows, ctx.cfg_extra_rows()
    if ctx.do_cfg and text_rows is ctx.cache.get("_cfg_text", (None, None, None))[2]:
        return latent_rows, text_rows, ctx.cfg_extra_rows()
    raise ValueError(
        f"method {getattr(method, 'name', type(method).__name__)!r} built text rows without their extra "
        f"conditioning on family {ctx.family!r}: return (latents, text, ctx.extra_rows([...])) from unet_inputs"
    )


def denoise(
    components: Components,
    scheduler: Any,
    latent_rows: torch.Tensor,
    t: torch.Tensor,
    text_rows: torch.Tensor,
    extra: dict[str, Any],
    family: str,
) -> torch.Tensor:
    """One batched denoiser call: the UNet (sd, sdxl: ε) or the MMDiT (sd3: v, timestep per row)."""
    if family == "sd3":
        timestep = t.expand(latent_rows.shape[0])
        return components.unet(
            hidden_states=latent_rows,
            timestep=timestep,
            encoder_hidden_states=text_rows,
            return_dict=False,
            **extra,
        )[0]
    model_in = scheduler.scale_model_input(latent_rows, t)
    return components.unet(model_in, t, encoder_hidden_states=text_rows, return_dict=False, **extra)[0]
