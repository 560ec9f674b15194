"""``dual_latent``: context-preserving dual latent reconstruction (Vice, Akhtar, [Shah], Hartley, Mian;
arXiv 2411.13982), docs/specs/methods.md §3.

**Provisional.** No code has been released and the paper's method section was not available: this is our
reading of the abstract and of third-party summaries (docs/specs/methods.md §3.2, UNVERIFIED against the PDF). The
safe-embedding source, the fusion space, where τ_gc sits and the defaults of λ and τ_gc are all guesses kept
behind config switches; replace them once §3 of the paper is read.

Per call, with prompt embedding c_u, a *safe embedding* c_s of the same prompt and the unconditional c_∅:

1. global-context phase, steps i < i_gc: one stream on c_u with ordinary classifier-free guidance (2 rows),
   which fixes layout and context;
2. dual phase, i ≥ i_gc: one UNet call on the shared latent z with rows [c_∅ ; c_u ; c_s] (3 rows, the
   unconditional branch shared), then
     ε̃_u = ε_∅ + s_g·(ε_u − ε_∅),   ε̃_s = ε_∅ + s_g·(ε_s − ε_∅)
   and one of three fusions (``fusion_space``):
     latent (default):  z ← (1−λ)·step_u(ε̃_u, z) + λ·step_s(ε̃_s, z)                         (fusion eq.)
                        two scheduler copies (the sampler's, and a deep copy taken at i_gc) so that
                        multistep schedulers (DPM++, PNDM) keep one history per stream; a stochastic step
                        of the second stream draws from a *clone* of each request's generator, so both
                        streams see the same noise and the first stream's generator advances exactly as
                        in the baseline;
     eps:               z ← step((1−λ)·ε̃_u + λ·ε̃_s, z)
     x0:                x̂0_f = (1−λ)·x̂0(z, ε̃_u) + λ·x̂0(z, ε̃_s);  z ← step(ε̃_u, √ᾱ·x̂0_f + √(1−ᾱ)·ε̃_u)
                        (only the reconstruction is fused; the trajectory keeps the prompt's noise estimate)

Because both streams restart from the fused latent every step, ``latent`` and ``eps`` are the same update
for every scheduler whose step is affine in the model output given the latent and the noise draw (DDIM,
DDPM with shared noise, Euler, DPM++ and PNDM with per-stream histories): they differ by float rounding only
(tested). ``x0`` is a genuinely different update.

λ = 0 skips the dual phase, so it is the baseline bit for bit; λ = 1 with latent fusion is the baseline run
on the safe embedding after i_gc (up to batched-kernel rounding, tested).

Safe-embedding sources (the concept pack's ``safe_embedding``, or the config's to override it):

- ``{kind: rewrite, replace: {word: replacement, ...}}``: the prompt with unsafe words replaced (whole words,
  case-insensitive, longest first) — the toy analogue of Safe-CLIP, e.g. "a red circle" → "a circle";
- ``{kind: encoder, model: <hub id or folder>[, subfolder: ...]}``: the prompt through another CLIP text
  encoder (Safe-CLIP, e.g. ``aimagelab/safeclip_vit-l_14``), the components' tokenizer;
- ``{kind: suffix, text: "...", [separator: ", "]}``: the prompt with a safety-context string appended.

τ_gc (``tau_gc`` with ``tau_gc_unit``): a fraction of the steps (default 0.2 → the first 20% are global), a
step index, or a DDPM timestep (dual phase where t ≤ τ_gc). Levels are a λ ladder at τ_gc = 0.2.

Toy calibration (DDIM 20 steps, "a red circle"/"a red square" × 8 seeds, red pixel fraction 0.169 at
baseline). With red rewritten to "blue": λ 0.25 → 0.168, 0.5 → 0.053, 0.75 → 0.0003, 1 → 0; prompts without
unsafe words are rewritten to themselves (c_s = c_u), so benign images do not move. With the toy pack's
rewrite (red → nothing) there is no reduction at any λ (0.155–0.172): colourless prompts are outside the toy
model's captions and come out reddish — the safe embedding must name a safe counterpart, as Safe-CLIP does.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from models.components import ModelLoadError
from models.method import MethodConfig, SafetyMethod

if TYPE_CHECKING:
    from transformers import CLIPTextModel

    from models.sampler import Context

FUSION_SPACES = ("latent", "eps", "x0")
TAU_UNITS = ("fraction", "step", "timestep")
SOURCES = ("rewrite", "encoder", "suffix")

_ENCODERS: dict[tuple, Any] = {}  # loaded safe text encoders, per process


@dataclass(frozen=True)
class DualLatentConfig(MethodConfig):
    """Defaults are our guesses (no released code, paper unread): λ = 0.5, τ_gc = 20% of the steps."""

    fusion_weight: float = 0.5  # λ, the knob
    tau_gc: float = 0.2  # end of the global-context phase, in ``tau_gc_unit``
    tau_gc_unit: str = "fraction"  # "fraction" of steps | "step" index | "timestep" (dual where t ≤ τ_gc)
    fusion_space: str = "latent"  # "latent" | "eps" | "x0"
    safe_embedding: dict[str, Any] = field(default_factory=dict)  # overrides the concept pack's

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion_weight", float(self.fusion_weight))
        object.__setattr__(self, "tau_gc", float(self.tau_gc))
        if self.fusion_space not in FUSION_SPACES:
            raise ValueError(
                f"dual_latent: fusion_space={self.fusion_space!r} is not one of {', '.join(FUSION_SPACES)}"
            )
        if self.tau_gc_unit not in TAU_UNITS:
            raise ValueError(
                f"dual_latent: tau_gc_unit={self.tau_gc_unit!r} is not one of {', '.join(TAU_UNITS)}"
            )
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"dual_latent: fusion_weight={self.fusion_weight} is not in [0, 1]")
        if self.tau_gc < 0 or (self.tau_gc_unit == "fraction" and self.tau_gc > 1):
            raise ValueError(
                f"dual_latent: tau_gc={self.tau_gc} is out of range for unit {self.tau_gc_unit!r}"
            )
        if self.safe_embedding:
            check_source(self.safe_embedding)


# ---------------------------------------------------------------------------------------------------------
# Safe-embedding sources
# ---------------------------------------------------------------------------------------------------------
def check_source(spec: dict[str, Any]) -> None:
    kind = spec.get("kind")
    need = {"rewrite": "replace", "encoder": "model", "suffix": "text"}
    if kind not in need:
        raise ValueError(f"dual_latent: safe_embedding kind {kind!r} is not one of {', '.join(SOURCES)}")
    if not spec.get(need[kind]):
        raise ValueError(f"dual_latent: safe_embedding of kind {kind!r} needs {need[kind]!r}")


def rewrite_prompt(prompt: str, replace: dict[str, str]) -> str:
    """Replace whole words or phrases (case-insensitive, longest first), then tidy the spacing."""
    table = {k.lower(): v for k, v in replace.items()}
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)) + r")\b", re.I
    )
    out = pattern.sub(lambda m: table[m.group(0).lower()], prompt)
    out = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s+", " ", out))
    return out.strip()


def load_safe_encoder(
    model: str,
    subfolder: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> CLIPTextModel:
    """A CLIPTextModel from a local folder or a hub id (cache only when offline); one-line errors."""
    from transformers import CLIPTextModel

    key = (model, subfolder, str(device), str(dtype))
    if key in _ENCODERS:
        return _ENCODERS[key]
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not path.exists():
        raise ModelLoadError(f"safe-embedding encoder folder {model} does not exist")
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        import transformers.utils.logging as tlog

        tlog.set_verbosity_error()
        encoder = CLIPTextModel.from_pretrained(str(path) if looks_local else model, **kwargs)
    except Exception as exc:
        if looks_local:
            raise ModelLoadError(
                f"safe-embedding encoder folder {path} could not be loaded: {type(exc).__name__}: {exc}".split(
                    "\n"
                )[0]
            ) from None
        raise ModelLoadError(
            f"safe-embedding encoder {model!r} is not in the local Hugging Face cache and the hub is unreachable; "
            f"pass a local folder with a CLIPTextModel (safe_embedding: {{kind: encoder, model: /path/to/encoder}})"
        ) from None
    encoder = encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)
    _ENCODERS[key] = encoder
    return encoder


# ---------------------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------------------
def _clone(generator: torch.Generator) -> torch.Generator:
    twin = torch.Generator(device=generator.device)
    twin.set_state(generator.get_state())
    return twin


class DualLatent(SafetyMethod):
    """Provisional (docs/specs/methods.md §3.2, unverified against the paper): two guided streams fused with weight λ."""

    name: ClassVar[str] = "dual_latent"
    version: ClassVar[str] = "1"
    provisional: ClassVar[bool] = True
    Config: ClassVar[type[MethodConfig]] = DualLatentConfig
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "off": {"fusion_weight": 0.0},
        "weak": {"fusion_weight": 0.25},
        "medium": {"fusion_weight": 0.5},
        "strong": {"fusion_weight": 0.75},
        "max": {"fusion_weight": 1.0},
    }
    KNOB: ClassVar[str | None] = "fusion_weight"
    KNOB_VALUES: ClassVar[tuple[float, ...]] = (0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)
    # the provisional spec (docs/specs/methods.md §3.2) is about SD 1.4/2.1 and Safe-CLIP; no code exists: ours, SD only
    FAMILIES: ClassVar[dict[str, str]] = {"sd": "ours"}

    # -- what determines the effect -------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.config.fusion_weight > 0

    @property
    def is_off(self) -> bool:
        return not self.active

    def source(self) -> dict[str, Any]:
        """The safe-embedding spec in use: the config's, else the concept pack's."""
        spec = self.config.safe_embedding or (self.concept.safe_embedding if self.concept is not None else {})
        if not spec:
            raise ValueError(
                "dual_latent: no safe embedding (concept pack `safe_embedding` or config `safe_embedding`)"
            )
        check_source(spec)
        return dict(spec)

    def concept_fields(self) -> dict[str, Any]:
        return {"safe_embedding": self.source()} if self.active else {}

    def missing_data(self, model: str, height: int, width: int) -> str | None:
        if not self.active:
            return None
        pack = self.concept.pack_id if self.concept is not None else "none"
        try:
            spec = self.source()
        except ValueError:
            return (
                f"concept pack {pack} has no safe_embedding; add one to the pack or the method's overrides "
                f"(safe_embedding: {{kind: rewrite, replace: {{word: safe word}}}} or {{kind: encoder, model: DIR}})"
            )
        local = spec["kind"] == "encoder" and str(spec["model"]).startswith((".", "/", "~"))
        if local and not Path(spec["model"]).expanduser().exists():
            return f"safe-embedding encoder folder {spec['model']} (concept pack {pack}) does not exist"
        return None

    def safe_texts(self, prompts: list[str]) -> list[str]:
        """What c_s is the encoding of (rewrite, suffix), or a label of the encoder."""
        spec = self.source()
        if spec["kind"] == "rewrite":
            return [rewrite_prompt(p, spec["replace"]) for p in prompts]
        if spec["kind"] == "suffix":
            sep = spec.get("separator", ", ")
            return [f"{p.rstrip()}{sep}{spec['text'].strip()}" for p in prompts]
        return [
            f"encoder:{spec['model']}" + (f"/{spec['subfolder']}" if spec.get("subfolder") else "")
        ] * len(prompts)

    def dual_start(self, ctx: Context) -> int:
        """Index i_gc of the first dual-phase step."""
        n, tau, unit = len(ctx.timesteps), self.config.tau_gc, self.config.tau_gc_unit
        if unit == "fraction":
            return min(n, round(tau * n))
        if unit == "step":
            return min(n, int(tau))
        return next((i for i, t in enumerate(ctx.timesteps) if float(t) <= tau), n)

    def _dual(self, ctx: Context, i: int) -> bool:
        return self.active and i >= ctx.state["dl_start"]

    # -- hooks ----------------------------------------------------------------------------------------
    def setup(self, ctx: Context) -> None:
        ctx.state["dl_fused"] = 0
        if not self.active:
            ctx.state["dl_start"] = len(ctx.timesteps)
            return
        spec = self.source()
        texts = self.safe_texts(ctx.prompts)
        if spec["kind"] == "encoder":
            encoder = load_safe_encoder(spec["model"], spec.get("subfolder"), ctx.device, ctx.dtype)
            with torch.no_grad():
                safe = encoder(ctx.tokenize(ctx.prompts).to(ctx.device), attention_mask=None)[0].to(ctx.dtype)
            if safe.shape[-1] != ctx.cond.shape[-1]:
                raise ModelLoadError(
                    f"safe-embedding encoder {spec['model']} has hidden size {safe.shape[-1]}, "
                    f"the UNet expects {ctx.cond.shape[-1]}"
                )
        else:
            safe = ctx.encode(texts)
        ctx.state["dl_safe"] = safe
        ctx.state["dl_texts"] = texts
        ctx.state["dl_start"] = self.dual_start(ctx)

    def unet_inputs(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._dual(ctx, i):
            return super().unet_inputs(ctx, i, t, latents)
        safe = ctx.state["dl_safe"]
        if not ctx.do_cfg:
            return torch.cat([latents, latents]), torch.cat([ctx.cond, safe])
        # one call, three branches on the shared latent: [c_∅ ; c_u ; c_s]
        return torch.cat([latents, latents, latents]), torch.cat([ctx.uncond, ctx.cond, safe])

    def guide(self, ctx: Context, i: int, t: torch.Tensor, eps_rows: torch.Tensor) -> torch.Tensor:
        if not self._dual(ctx, i):
            return super().guide(ctx, i, t, eps_rows)
        if not ctx.do_cfg:
            eps_u, eps_s = eps_rows.chunk(2)
        else:
            eps_uncond, eps_text, eps_safe = eps_rows.chunk(3)
            g = ctx.settings.guidance
            eps_u = eps_uncond + g * (eps_text - eps_uncond)  # CFG on c_u
            eps_s = eps_uncond + g * (eps_safe - eps_uncond)  # CFG on c_s, sharing ε_∅
        ctx.state["dl_eps_safe"] = eps_s
        return eps_u

    def step(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        if not self._dual(ctx, i):
            return super().step(ctx, i, t, latents, eps)
        lam, eps_s = self.config.fusion_weight, ctx.state.pop("dl_eps_safe")
        space = self.config.fusion_space
        if space == "eps":
            out = ctx.scheduler_step((1 - lam) * eps + lam * eps_s, t, latents).prev_sample
        elif space == "x0":
            x0 = (1 - lam) * ctx.predict_x0(latents, eps, i, t) + lam * ctx.predict_x0(latents, eps_s, i, t)
            out = ctx.scheduler_step(eps, t, ctx.renoise(x0, eps, i, t)).prev_sample
        else:
            if "dl_scheduler" not in ctx.state:  # the second stream's scheduler, forked at i_gc
                ctx.state["dl_scheduler"] = copy.deepcopy(ctx.scheduler)
            kwargs = ctx.step_kwargs()
            if "generator" in kwargs:  # clone before the first stream draws: same noise, untouched stream
                kwargs["generator"] = [_clone(g) for g in ctx.generators]
            z_s = ctx.state["dl_scheduler"].step(eps_s, t, latents, **kwargs, return_dict=True).prev_sample
            z_u = ctx.scheduler_step(eps, t, latents).prev_sample
            out = (1 - lam) * z_u + lam * z_s  # fusion eq.
        ctx.state["dl_fused"] += 1
        return out

    def finish(self, ctx: Context) -> None:
        texts = ctx.state.get("dl_texts") or [None] * ctx.batch_size
        rewrite = self.active and self.source()["kind"] == "rewrite"
        for diag, text, prompt in zip(ctx.diagnostics, texts, ctx.prompts, strict=True):
            diag["dl_fused_steps"] = ctx.state["dl_fused"]
            diag["dl_safe_prompt"] = text
            # a rewrite that matched no word gives c_s = c_u: the fused streams are the same stream
            changed = text != prompt if rewrite else text is not None
            diag["acted"] = bool(ctx.state["dl_fused"] > 0 and changed)
