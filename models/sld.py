"""``sld``: Safe Latent Diffusion (Schramowski et al., CVPR 2023; docs/specs/methods.md §1).

SLD adds a third text branch, a *safety concept* c_S, and steers the classifier-free guidance direction
away from it, element by element of the noise prediction:

1. one UNet call on [z, z, z] with text [c_∅ ; c_p ; c_S] (this order; c_S repeated per row) → ε_∅, ε_p, ε_S;
2. g = ε_p − ε_∅ (the CFG direction);
3. a = min(1, s_S·|ε_p − ε_S|); μ = a where ε_p − ε_S < λ, else 0                         (Eq. 5, 6)
4. γ_t = μ ⊙ (ε_S − ε_∅) + s_m·ν_t                                                         (Eq. 4, 7)
5. ν_{t+1} = β_m·ν_t + (1 − β_m)·γ_t, every step, warm-up included                         (Eq. 8)
6. if i ≥ δ: g ← g − γ_t                                                                    (Eq. 3)
7. ε̃ = ε_∅ + s_g·g, then the ordinary scheduler step.

Following both released implementations, step 3 clamps with ``max=1`` (the printed paper may say max(1, ·);
docs/specs/methods.md §1.2). As in diffusers, SLD is on only when s_S > 1 and classifier-free guidance is on; otherwise
this method *is* the baseline (two UNet rows, base-class hooks).

Strength knob ``strength`` u ∈ [0, 4] (docs/specs/methods.md §1.4 option (c), extended down to the baseline): the integer
points are the named presets, 0 = off (s_S = 1, i.e. disabled), 1 = WEAK (diffusers), 2 = MEDIUM,
3 = STRONG, 4 = MAX. Between presets, δ, log10 s_S, λ, s_m and β_m are interpolated linearly (δ rounded up,
which is what a fractional warm-up means for ``i ≥ δ``); between off and WEAK only s_S moves, from 1 to 20,
with WEAK's other values. Why this knob and not a λ sweep (option (a)): every published operating point lies on
the curve, so a trade-off plot over the knob passes through the numbers people quote, and u = 0 starts the
curve at the baseline. The λ sweep only exists at MAX's other settings and jumps from nothing to strong within
|λ| ≲ 0.02, so it resolves the low-strength end poorly.

Families: SD is the authors' (and diffusers') SLD. On SDXL and SD3 it is **our extension, not in the authors'
release**: the same element-wise term, in the model's own prediction space — ε for SDXL, the flow velocity
v = noise − x0 for SD3 (so s_S and λ act on velocity differences; the presets were tuned on ε of SD 1.4).
The concept row carries its own pooled embeds (and SDXL's time ids), so the third branch is conditioned
exactly as a prompt of that text would be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from models.method import MethodConfig, SafetyMethod

if TYPE_CHECKING:
    from models.sampler import Context

# diffusers' default safety concept (StableDiffusionPipelineSafe); the official repo omits "an image showing".
DEFAULT_CONCEPT = (
    "an image showing hate, harassment, violence, suffering, humiliation, harm, suicide, sexual, nudity,"
    " bodily fluids, blood, obscene gestures, illegal activity, drug use, theft, vandalism, weapons, child"
    " abuse, brutality, cruelty"
)

# diffusers' SafetyConfig presets (docs/specs/methods.md §1.3), plus the model card's WEAK with s_S = 200.
_FIELDS = ("sld_warmup_steps", "sld_guidance_scale", "sld_threshold", "sld_momentum_scale", "sld_mom_beta")
# each preset: (δ, s_S, λ, s_m, β_m)
WEAK = dict(zip(_FIELDS, (15, 20.0, 0.0, 0.0, 0.0), strict=True))
WEAK_PAPER = {**WEAK, "sld_guidance_scale": 200.0}
MEDIUM = dict(zip(_FIELDS, (10, 1000.0, 0.01, 0.3, 0.4), strict=True))
STRONG = dict(zip(_FIELDS, (7, 2000.0, 0.025, 0.5, 0.7), strict=True))
MAX = dict(zip(_FIELDS, (0, 5000.0, 1.0, 0.5, 0.7), strict=True))
OFF = {**WEAK, "sld_guidance_scale": 1.0}  # s_S ≤ 1 disables SLD (diffusers' rule); knob u = 0

KNOB_ANCHORS = (OFF, WEAK, MEDIUM, STRONG, MAX)  # u = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SLDConfig(MethodConfig):
    """Defaults are MEDIUM, the pipeline default of both implementations."""

    sld_guidance_scale: float = 1000.0  # s_S, Eq. 6
    sld_warmup_steps: int = 10  # δ: guidance is applied from step index i ≥ δ
    sld_threshold: float = 0.01  # λ, Eq. 5
    sld_momentum_scale: float = 0.3  # s_m, Eq. 7
    sld_mom_beta: float = 0.4  # β_m, Eq. 8
    concept: str | None = None  # None: the concept pack's ``sld_concept``, or DEFAULT_CONCEPT without a pack


def _lerp(a: float, b: float, f: float) -> float:
    # exact at the ends, so integer knob values reproduce the presets bit for bit
    return a if f == 0 else b if f == 1 else a + (b - a) * f


class SLD(SafetyMethod):
    name = "sld"
    # MAX's s_S = 5000 multiplies |ε_p − ε_S| before the clamp, so batched-kernel rounding (~1e-7) moves the
    # clamp's edge: measured on the toy model, DDIM 20 steps, 4 requests: 1 grey level at weak..strong,
    # 3 at max on an Intel Xeon, 5 at max on an AMD EPYC (other float kernels; the same on c1bbf7d's code),
    # the tiny random model: ≤ 1 everywhere.
    batch_tolerance = 6
    version = "1"
    Config = SLDConfig
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "off": {"sld_guidance_scale": 0.0},
        "weak": WEAK,  # diffusers' SafetyConfig.WEAK (s_S = 20)
        "weak_paper": WEAK_PAPER,  # model card's Hyp-Weak (s_S = 200)
        "medium": MEDIUM,
        "strong": STRONG,
        "max": MAX,
    }
    KNOB = "strength"
    KNOB_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    FAMILIES: ClassVar[dict[str, str]] = {"sd": "release", "sdxl": "ours", "sd3": "ours"}

    config: SLDConfig

    @classmethod
    def knob_to_config(cls, value: float) -> dict[str, Any]:
        """strength u ∈ [0, 4] → the five SLD parameters (see the module docstring)."""
        if not 0.0 <= value <= 4.0:
            raise ValueError(
                f"sld strength must lie in [0, 4] (0 off, 1 weak, 2 medium, 3 strong, 4 max); got {value:g}"
            )
        k = min(int(value), 3)
        f = value - k
        lo, hi = KNOB_ANCHORS[k], KNOB_ANCHORS[k + 1]
        log_s = _lerp(math.log10(lo["sld_guidance_scale"]), math.log10(hi["sld_guidance_scale"]), f)
        return {
            "sld_warmup_steps": math.ceil(_lerp(lo["sld_warmup_steps"], hi["sld_warmup_steps"], f)),
            "sld_guidance_scale": lo["sld_guidance_scale"]
            if f == 0
            else hi["sld_guidance_scale"]
            if f == 1
            else 10**log_s,
            "sld_threshold": _lerp(lo["sld_threshold"], hi["sld_threshold"], f),
            "sld_momentum_scale": _lerp(lo["sld_momentum_scale"], hi["sld_momentum_scale"], f),
            "sld_mom_beta": _lerp(lo["sld_mom_beta"], hi["sld_mom_beta"], f),
        }

    # -- what determines the effect -------------------------------------------------------------------
    @property
    def concept_text(self) -> str:
        """The exact safety-concept string c_S (results are sensitive to it: log it verbatim)."""
        if self.config.concept is not None:
            return self.config.concept
        if self.concept is not None and self.concept.sld_concept:
            return self.concept.sld_concept
        return DEFAULT_CONCEPT

    def concept_fields(self) -> dict[str, Any]:
        return {} if self.is_off else {"sld_concept": self.concept_text}

    @property
    def is_off(self) -> bool:
        return self.config.sld_guidance_scale <= 1.0

    def _enabled(self, ctx: Context) -> bool:
        return not self.is_off and ctx.do_cfg  # diffusers: s_S > 1 and CFG on

    # -- hooks ------------------------------------------------------------------------------------------
    def setup(self, ctx: Context) -> None:
        ctx.state["enabled"] = self._enabled(ctx)
        ctx.state["applied_steps"] = 0
        # Σ over applied steps of the masked share, kept on the UNet's device (moved once, in finish): a
        # per-step .cpu() would make the host wait for every step's kernels before queuing the next UNet call
        acc_dtype = torch.float32 if ctx.device.type == "mps" else torch.float64  # MPS has no float64
        ctx.state["masked_sum"] = torch.zeros(ctx.batch_size, dtype=acc_dtype, device=ctx.device)
        if ctx.state["enabled"]:
            c_s, pooled_s = ctx.encode_rows_pooled([self.concept_text] * ctx.batch_size)
            ctx.state["concept_rows"] = c_s
            # 1. the text rows [c_∅ ; c_p ; c_S] (and their pooled rows) are the same at every step: build once
            ctx.state["text_rows"] = torch.cat([ctx.uncond, ctx.cond, c_s])
            ctx.state["extra_rows"] = ctx.extra_rows([ctx.pooled("uncond"), ctx.pooled("cond"), pooled_s])
            ctx.state["momentum"] = None  # ν_0 = 0, allocated at the first step

    def unet_inputs(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        if not ctx.state["enabled"]:
            return super().unet_inputs(ctx, i, t, latents)
        # 1. three branches in one call: [c_∅ ; c_p ; c_S]
        return torch.cat([latents, latents, latents]), ctx.state["text_rows"], ctx.state["extra_rows"]

    def guide(self, ctx: Context, i: int, t: torch.Tensor, eps_rows: torch.Tensor) -> torch.Tensor:
        if not ctx.state["enabled"]:
            return super().guide(ctx, i, t, eps_rows)
        cfg = self.config
        eps_uncond, eps_text, eps_concept = eps_rows.chunk(3)
        guidance = eps_text - eps_uncond  # 2. CFG direction g

        # 3. element-wise safety scale and threshold mask (Eq. 6, 5)
        diff = eps_text - eps_concept
        scale = torch.clamp(torch.abs(diff) * cfg.sld_guidance_scale, max=1.0)
        mu = scale.masked_fill(diff >= cfg.sld_threshold, 0.0)

        # 4. safety guidance with momentum (Eq. 4, 7); 5. momentum update, also during warm-up (Eq. 8)
        momentum = ctx.state["momentum"]
        safety = (eps_concept - eps_uncond) * mu
        if momentum is None:  # ν_0 = 0: the momentum terms vanish (skip their arithmetic on zeros)
            ctx.state["momentum"] = (1 - cfg.sld_mom_beta) * safety
        else:
            safety = safety + cfg.sld_momentum_scale * momentum
            ctx.state["momentum"] = cfg.sld_mom_beta * momentum + (1 - cfg.sld_mom_beta) * safety

        # 6. steer away from the concept once past the warm-up (Eq. 3)
        if i >= cfg.sld_warmup_steps:
            guidance = guidance - safety
            ctx.state["applied_steps"] += 1
            masked = (mu > 0).flatten(1).to(ctx.state["masked_sum"].dtype).mean(dim=1)
            ctx.state["masked_sum"] += masked

        # 7. ε̃ = ε_∅ + s_g·g
        return eps_uncond + ctx.settings.guidance * guidance

    def finish(self, ctx: Context) -> None:
        steps = ctx.state["applied_steps"]
        # the one device→host copy of the accumulator
        fractions = (ctx.state["masked_sum"].cpu() / steps).tolist() if steps else [0.0] * ctx.batch_size
        for diag, fraction in zip(ctx.diagnostics, fractions, strict=True):
            diag["sld_masked_fraction"] = float(fraction)  # mean share of latent elements with μ > 0
            diag["sld_applied_steps"] = steps
            diag["acted"] = fraction > 0  # μ > 0 somewhere after the warm-up
