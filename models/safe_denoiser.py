"""``safe_denoiser``: Training-free safe denoisers (Kim, Kim, Yusuf, Ermon, Park; NeurIPS 2025; docs/specs/methods.md §4).

The method repels the denoised estimate x̂0 from a *negation set* of unsafe images (VAE latents x⁽ⁿ⁾) with a
Gaussian-kernel (Nadaraya–Watson) estimate of the unsafe denoiser, at early steps only. It composes with any
base method: the base runs unchanged (conditioning, UNet batch, guidance, feature hooks) and this method edits
the latent between the base's guidance and the base's own scheduler step. Per step i at timestep t:

1. the base method gives the guided noise prediction ε̃ on z_t; x̂0 = (z_t − √(1−ᾱ_t)·ε̃)/√ᾱ_t      (§0)
2. only inside the window t_end ≤ t ≤ t_start (DDPM timesteps; official nudity 780–1000):
   ``variant="official"`` (§4.3, what the released code does):
     k_n = exp(−‖x̂0 − r_n‖₂ / (2σ²)), r_n = x⁽ⁿ⁾ L2-normalised per location  (unsquared, fixed σ)
     Ê_unsafe = Σ_n k_n r_n / (Σ_n k_n + ε_k),   K = Σ_n k_n
     x̂0′ = x̂0 − η·Ê_unsafe
   ``variant="paper"`` (§4.2, Thm 3.2 with β* ≈ η·β):
     k_n = q_t(z_t | x⁽ⁿ⁾) = N(z_t; √ᾱ_t·x⁽ⁿ⁾, (1−ᾱ_t)·I), relative to its typical value (below)
     Ê_unsafe = Σ_n k_n x⁽ⁿ⁾ / Σ_n k_n,   β(z_t) = (1/N)·Σ_n k_n  (clipped at ``beta_max``)
     x̂0_safe = x̂0 + η·β(z_t)·(x̂0 − Ê_unsafe)
3. the gate: apply only where the kernel mass (K, or β for the paper variant) exceeds the threshold;
4. re-noise at the same level, z_t′ = √ᾱ_t·x̂0′ + √(1−ᾱ_t)·ξ, with fresh ξ (``renoise="official"``) or
   with ξ = ε̃ (``renoise="eps"``: deterministic; for DDIM this is exactly "replace x̂0 in the update");
5. the base method's step from z_t′ with the *old* ε̃ (as the official code; no extra UNet pass).

Our choices (docs/specs/methods.md §4.6, §4.7), each a departure from the official code made on purpose:

- η = 0 skips steps 1–4 entirely, so it reproduces the base method bit for bit (the official code still
  re-noises at η = 0 when the gate passes).
- Every extra random draw (ξ) comes from a per-request generator seeded from a hash of the request seed, and
  is drawn at every window step whether or not the gate passes, so the base method's random stream (DDPM
  variance noise) is never shifted and a request's ξ never depends on the rest of the batch. x̂0 comes from
  the closed form (``ctx.predict_x0``), not from an extra ``scheduler.step`` that would draw noise.
- Kernels are computed in float64 with log-sum-exp: K, the weights and Ê_unsafe are exact where the official
  exp underflows (gotcha 2). ``kernel_eps`` reproduces the official ``+1e−8`` stabiliser exactly
  (K/(K+ε) = sigmoid(log K − log ε)); it is 0 (a pure softmax average) except in the ``official`` level.
- Paper variant, normalisation of q_t: the Gaussian's constant (2π(1−ᾱ_t))^(−D/2) and the factor e^(−D/2)
  make β astronomically small in D = 16,384 dimensions; the paper folds such constants into η. We use
  log k_n = −‖z_t − √ᾱ_t·x⁽ⁿ⁾‖²/(2(1−ᾱ_t)) + D/2, i.e. the density relative to its expected value for a
  z_t drawn from x⁽ⁿ⁾ itself, so β ≈ 1 means "as close to an unsafe image as its own noisy versions are";
  β is clipped at ``beta_max`` (1) so the update stays bounded. [analysis]
- Gate threshold (§4.3 step 5), for either variant: noise every reference to the schedule's smallest
  timestep (seed ``gate_seed`` = 42), compute each one's kernel mass against all references, take the
  ``gate_quantile`` (0 = minimum), subtract ``gate_margin`` (1.6); a threshold ≤ 0 lets every step pass.
  The official code evaluates this at every timestep of the 50-step schedule and keeps the last (smallest)
  one; we compute only that one, from its own seeded draw. ``gate_threshold`` fixes the value instead.
  The margin is in the official mass's units (K ≈ N for near-duplicates); the paper variant's β is ≲ 1, so
  with the default margin its calibrated threshold is ≤ 0 and the gate never closes — set ``gate_margin=0``
  (or ``gate_threshold``) for a live gate there.
- With ``renoise="official"`` every gated step replaces the latent's noise part by fresh ξ, which changes
  the image far more than the x̂0 edit itself at small η (on the tiny random model: ~24 grey levels mean
  with an edit of 1e−7). Use ``renoise="eps"`` to see the edit alone.
- The negation set (``models/negation.py``) is a versioned artifact built for this model and size by
  ``safeaudit negation-set build|import`` (its latents are read, after checking the VAE fingerprint and the
  size), or, at this API only, a plain image folder VAE-encoded once per (image bytes, VAE weights, size,
  sampling) and cached (``$SAFEAUDIT_CACHE/negation/<key>.pt``). We use the posterior mean by default; the
  official code uses one stochastic sample per image (gotcha 4), offered as ``vae_latent="sample"`` with
  ``vae_seed`` (an artifact records its own). Images are resized (bicubic) to the run's size. The set's hash
  is in the resolved config (hence the generation id) and in each image's ``sd_negation_set``.
- ``acted`` (diagnostics) is True iff the gate opened at least once for the image; the base method's own
  ``acted`` is kept as ``base_acted``.
- The official x̂0 is compared *unnormalised* with the per-location-normalised references, as docs/specs/methods.md
  §4.3 reads the code; we do the same unless ``query_norm`` (ours) normalises x̂0 as well (kernel only; the
  update still subtracts from the unnormalised x̂0).

Levels. ``official`` is the released nudity configuration (η 0.33, σ 3.15, window 780–1000, calibrated gate
with margin 1.6, stochastic VAE latents, ε_k = 1e−8, fresh-noise re-noising, base SAFREE ``official``); run
it with the DDPM scheduler at 50 steps, as the authors did (a sampler setting, not a method setting).
``weak``/``medium``/``strong``/``max`` are an η ladder (2, 8, 12, 16; the knob moves η on the same settings)
calibrated on the toy model, where the official settings do nothing: there the early x̂0 (per-location norm
≈ 4.4) never comes near the normalised references (log K ≈ 1.6 against a calibrated threshold of 3.0), and
with the gate off the edit is a near-constant colour shift of every image (η = 1: red −20%, benign images
moved 17 grey levels). The ladder therefore (ours, ``LADDER_BASE``) normalises x̂0 per location like the
references (``query_norm``), uses σ = 1, a fixed gate K > 0.26 (log −1.35, between red and benign x̂0:
log K ≈ −1.2 vs −1.5…−2.2 at the window's steps) and ``renoise="eps"``. Toy, DDIM 20 steps, 16 red and 16
benign prompts × seeds, red pixel fraction 0.169 at baseline: η 1.5 → 0.113, 2 → 0.076, 4 → 0.041,
8 → 0.024, with benign images moved 11, 12, 15, 23 grey levels (mean |Δ|) and no red created. Measured
as the red-*flag* rate (toy_concept > 0.2, 20 red prompts; the audit's safety number) η 1.5/2/4/8 gave
0.90/0.80/0.85/0.55 against 0.95 at baseline, and 12/16/24/32 gave 0.45/0.15/0.10/0.35 (overshoot at 32):
hence the ladder 2, 8, 12, 16.
**Recalibration needed** (issue 17): the ladder was calibrated on the earlier hand-made set (32 pure-red
renders). With the platform-built toy set (40 toy-model images of red prompts, posterior means) the masses
moved: over 8 red and 8 benign prompts the gate opened on every image at weak (1–4 of the window's steps,
benign included: log K −0.35…−1.7) and at strong/max on one step each (log K −2.3…−3.1), so acted is True
everywhere but the gate no longer separates red from benign; re-fit ``gate_threshold`` and η on this set.
**The ladder's gate threshold is a toy number**: at SD scale (N = 515, D = 16,384) the normalised-query
mass at σ = 1 is many orders of magnitude smaller, so the ladder's gate would stay closed (``sd_gated_steps``
= 0) — use ``official`` there, or re-calibrate ``gate_threshold`` and σ on SD latents (open item).

Families: SD and SD3 follow the release; SDXL is ours (the edit is in latent space, family-blind). On SD3
the model predicts the flow velocity v; ``ctx.predict_x0`` gives x̂0 = z − σ·v and ``renoise="eps"`` reuses
the noise estimate behind v (``ctx.predict_noise``: z + (1 − σ)·v), so the same steps hold. ``official_sd3``
is the release's SD3 setting (MingyuKim87/Safe_Denoiser @ 223415b: ``run_nudity_sdv3.py``,
``configs/nudity/safe_denoiser_sdv3.yaml``, ``repellency/repellency_methods_fast_sdv3.py``,
``models/sdv3/safe_denoiser_pipeline.py``): η (``scale``) 0.03; σ = 1 — the yaml's 2.75 never reaches the
kernel, the pipeline calls ``conditioning(x0, beta_threshold=False)`` without σ; the query x̂0 normalised per
location like the references (the sdv3 module does it); no gate; ε_k = 1e−8; window 780 ≤ t ≤ 1000 on the
flow timesteps (t = 1000·σ); stochastic VAE latents scaled without SD3's shift (the release's ``embed_fn``:
``sample() * scaling_factor``, as ``_encode`` here); base = the release's SD3 SAFREE (projection at every step,
α = 0.01, no keyword negative prompt: ``negative_prompt=""``); CFG 2.5, 50 steps, fp16 in the README's
command. One difference, on purpose: the release does its own Euler step from the edited x̂0 with a noise
mixing √σ_next·n̂ + √(1−σ_next)·ξ; we re-noise at the current σ with fresh ξ and take the base's step with
the old v, the same construction as on SD.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from models.method import MethodConfig, SafetyMethod
from models.registry import build_method

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from models.concepts import ConceptPack
    from models.sampler import Context

VARIANTS = ("official", "paper")
RENOISE = ("official", "eps")
VAE_LATENTS = ("mean", "sample")


@dataclass(frozen=True)
class SafeDenoiserConfig(MethodConfig):
    """Defaults are the official nudity configuration (docs/specs/methods.md §4.4) on our conventions (§4.6, §4.7)."""

    eta: float = 0.33  # η, the repellency scale (official `scale`); the knob
    sigma: float = 3.15  # kernel width σ of the official variant (fixed over t)
    t_end: int = 780  # window [t_end, t_start] in DDPM timesteps, inclusive
    t_start: int = 1000
    variant: str = "official"  # "official" (§4.3) | "paper" (§4.2)
    gate: bool = True
    gate_threshold: float | None = None  # None: calibrated (§4.3 step 5); else a fixed kernel-mass threshold
    gate_quantile: float = 0.0
    gate_margin: float = 1.6
    gate_seed: int = 42
    beta_max: float = 1.0  # paper variant: β(z_t) is clipped here
    kernel_eps: float = 0.0  # official stabiliser ε_k in Σ k r / (Σ k + ε_k); 0 = pure softmax average
    query_norm: bool = False  # official variant: normalise x̂0 per location too before the kernel (ours)
    renoise: str = "official"  # "official": fresh ξ | "eps": reuse ε̃ (deterministic)
    # a negation set: artifact name, name@hash, hash or folder, or a plain image folder; default: the concept
    # pack's ``negation_set``. Run specs pin it to name@hash at validation (pipelines/requirements.py)
    negation_set: str | None = None
    vae_latent: str = "mean"  # plain folders: "mean" | "sample" (official; seeded by vae_seed); an artifact
    # carries its own encoding (its manifest's vae_latent)
    vae_seed: int = 0
    base: str = "baseline"  # registry name of the method this one wraps
    base_level: str = "off"
    base_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # one canonical type per field, so 1 and 1.0 from a YAML file hash to the same generation id
        for name in ("eta", "sigma", "gate_quantile", "gate_margin", "beta_max", "kernel_eps"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("t_end", "t_start", "gate_seed", "vae_seed"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.gate_threshold is not None:
            object.__setattr__(self, "gate_threshold", float(self.gate_threshold))
        for name, value, allowed in (
            ("variant", self.variant, VARIANTS),
            ("renoise", self.renoise, RENOISE),
            ("vae_latent", self.vae_latent, VAE_LATENTS),
        ):
            if value not in allowed:
                raise ValueError(f"safe_denoiser: {name}={value!r} is not one of {', '.join(allowed)}")
        if self.eta < 0 or self.sigma <= 0 or self.beta_max < 0 or self.kernel_eps < 0:
            raise ValueError("safe_denoiser: eta, beta_max and kernel_eps must be >= 0 and sigma > 0")
        if self.t_end > self.t_start:
            raise ValueError(f"safe_denoiser: window t_end={self.t_end} > t_start={self.t_start}")
        if not 0.0 <= self.gate_quantile <= 1.0:
            raise ValueError(f"safe_denoiser: gate_quantile={self.gate_quantile} is not in [0, 1]")


# ---------------------------------------------------------------------------------------------------------
# Kernels (pure functions of flattened latents; float64, log-sum-exp)
# ---------------------------------------------------------------------------------------------------------
def normalise_per_location(latents: torch.Tensor) -> torch.Tensor:
    """L2-normalise each spatial location across channels: (N, C, H, W) → unit vectors in R^C (§4.3 step 4)."""
    return latents / latents.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _softmax_average(logk: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log Σ_n k_n and Σ_n k_n x_n / Σ_n k_n from log-kernels (B, N) and references (N, D)."""
    logmass = torch.logsumexp(logk, dim=1)
    weights = torch.softmax(logk, dim=1)
    return logmass, weights @ refs


def official_kernel(
    x0: torch.Tensor, refs: torch.Tensor, sigma: float, kernel_eps: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official kernel on clean estimates x0 (B, D) against normalised references (N, D).

    Returns log K (B,) with K = Σ_n exp(−‖x0 − r_n‖/(2σ²)), and Ê_unsafe = Σ k_n r_n / (K + ε_k) (B, D)."""
    x0, refs = x0.double(), refs.double()
    dist = torch.cdist(x0, refs, compute_mode="donot_use_mm_for_euclid_dist")  # unsquared, as official
    logmass, e_unsafe = _softmax_average(-dist / (2.0 * sigma**2), refs)
    if kernel_eps > 0:  # K / (K + ε) without forming K: stays exact when K underflows
        e_unsafe = e_unsafe * torch.sigmoid(logmass - math.log(kernel_eps))[:, None]
    return logmass, e_unsafe


def paper_kernel(
    z: torch.Tensor, refs: torch.Tensor, a: float, s: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper kernel q_t(z | x_n) = N(a·x_n, s²I) on noisy latents z (B, D) against raw latents x_n (N, D).

    Returns log β (B,) with β = (1/N) Σ_n exp(−‖z − a·x_n‖²/(2s²) + D/2), and Ê_unsafe (B, D)."""
    z, refs = z.double(), refs.double()
    dim = z.shape[1]
    dist = torch.cdist(z, a * refs, compute_mode="donot_use_mm_for_euclid_dist")
    logk = -(dist**2) / (2.0 * s**2) + dim / 2.0
    logmass, e_unsafe = _softmax_average(logk, refs)
    return logmass - math.log(refs.shape[0]), e_unsafe


def log_threshold(logmass: torch.Tensor, quantile: float, margin: float) -> float:
    """log(quantile_q(mass) − margin), −inf when that is ≤ 0 (every step then passes the gate)."""
    q = float(torch.quantile(logmass.double(), quantile))
    if margin <= 0:
        return q
    ratio = margin * math.exp(-q) if q > -700 else math.inf  # margin / mass, guarded against overflow
    return q + math.log1p(-ratio) if ratio < 1 else -math.inf


# The negation set: an artifact of latents for this model and size, or a plain image folder encoded at run
# time (models/negation.py). Re-exported names keep the method's public surface.
from models.negation import (  # noqa: E402
    IMAGE_SUFFIXES,
    NegationSet,
    NegationSetError,
    cache_dir,
    clear_memory_cache,
    image_files,
    is_artifact,
    load_artifact,
    load_negation_set,
    model_key,
    negation_content_hash,
    parse_ref,
    pinned,
    resolve,
    vae_fingerprint,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "NegationSet",
    "NegationSetError",
    "SafeDenoiser",
    "SafeDenoiserConfig",
    "cache_dir",
    "clear_memory_cache",
    "image_files",
    "load_negation_set",
    "negation_content_hash",
    "vae_fingerprint",
]


def _aux_seed(seed: int) -> int:
    """Seed of a request's extra stream: a hash of its seed, so it never equals another request's seed."""
    return int.from_bytes(hashlib.sha256(f"safe_denoiser/{int(seed)}".encode()).digest()[:8], "little") >> 1


# ---------------------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------------------
# The ladder's shared settings, calibrated on the toy model (N = 32 red images, 4×8×8 latents, DDIM 20 steps;
# numbers in the module docstring): x̂0 normalised like the references and σ = 1 so that the kernel mass
# separates red from benign x̂0 (log K ≈ −1.2 vs −1.5…−2.2), a fixed gate between them, and the
# deterministic re-noising so that the levels measure the edit, not fresh noise.
LADDER_BASE: dict[str, Any] = dict(sigma=1.0, query_norm=True, gate=True, gate_threshold=0.26, renoise="eps")
_LADDER = {"weak": 2.0, "medium": 8.0, "strong": 12.0, "max": 16.0}


class SafeDenoiser(SafetyMethod):
    """Safe Denoiser around a base method: the base's hooks run unchanged, the step edits x̂0 first."""

    name: ClassVar[str] = "safe_denoiser"
    version: ClassVar[str] = "1"
    Config: ClassVar[type[MethodConfig]] = SafeDenoiserConfig
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "off": {"eta": 0.0},
        **{level: {**LADDER_BASE, "eta": eta} for level, eta in _LADDER.items()},
        # configs/nudity/safe_denoiser.yaml (docs/specs/methods.md §4.4): SAFREE base, stochastic VAE latents
        "official": dict(
            eta=0.33,
            sigma=3.15,
            t_end=780,
            t_start=1000,
            variant="official",
            gate=True,
            gate_quantile=0.0,
            gate_margin=1.6,
            gate_seed=42,
            kernel_eps=1e-8,
            renoise="official",
            vae_latent="sample",
            base="safree",
            base_level="official",
        ),
        # the release's SD3 nudity setting (see the module docstring, "Families")
        "official_sd3": dict(
            eta=0.03,
            sigma=1.0,
            t_end=780,
            t_start=1000,
            variant="official",
            gate=False,
            query_norm=True,
            kernel_eps=1e-8,
            renoise="official",
            vae_latent="sample",
            base="safree",
            base_level="max",
            base_overrides={"alpha": 0.01, "negative_prompt": False},
        ),
    }
    KNOB: ClassVar[str | None] = "eta"
    KNOB_VALUES: ClassVar[tuple[float, ...]] = (0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0)
    FAMILIES: ClassVar[dict[str, str]] = {"sd": "release", "sdxl": "ours", "sd3": "release"}

    @classmethod
    def knob_to_config(cls, value: float) -> dict[str, Any]:
        return {**LADDER_BASE, "eta": value}  # the knob moves η along the ladder's settings

    def __init__(
        self, config: MethodConfig | None = None, concept: ConceptPack | None = None, level: str = "off"
    ):
        super().__init__(config, concept, level)
        cfg = self.config
        self.base = build_method(
            cfg.base, cfg.base_level, overrides=dict(cfg.base_overrides) or None, concept=concept
        )

    # -- what determines the effect -------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.config.eta > 0

    @property
    def is_off(self) -> bool:
        return not self.active and self.base.is_off

    def negation_ref(self) -> str | None:
        """The set this configuration names: the config's, else the concept pack's."""
        if self.config.negation_set:
            return self.config.negation_set
        return self.concept.negation_set if self.concept is not None else None

    def negation_source(
        self, model: str | None = None, height: int | None = None, width: int | None = None
    ) -> tuple[str, Any] | None:
        """("artifact", manifest) or ("folder", path) for the named set, fitting the model and size where
        given; None when no set is named. Raises NegationSetError when an artifact cannot be found."""
        from models.components import REPO_ROOT

        ref = self.negation_ref()
        if not ref:
            return None
        path = Path(ref).expanduser()
        path = path if path.is_absolute() else REPO_ROOT / path
        if path.is_dir() and not is_artifact(path):
            return "folder", path
        return "artifact", resolve(str(path) if path.is_dir() else ref, model, height, width)

    def missing_data(self, model: str, height: int, width: int) -> str | None:
        """Why this configuration cannot run on (model, size) with its data, else None (run-spec validation)."""
        problem = self.base.missing_data(model, height, width)
        if problem or not self.active:
            return problem
        pack = self.concept.pack_id if self.concept is not None else "none"
        target = f"model {model} at {height}x{width}"
        supply = (
            f"build one for {target} (safeaudit negation-set build SPEC) or import an image folder "
            f"(safeaudit negation-set import DIR), then name it in the pack's negation_set or in the "
            f"method's overrides (negation_set: NAME)"
        )
        try:
            source = self.negation_source(model, height, width)
        except NegationSetError as exc:
            return f"{exc} (concept pack {pack})"
        if source is None:
            return f"concept pack {pack} has no negation set; {supply}"
        if source[0] == "folder":
            return (
                f"negation set {self.negation_ref()} is a plain image folder, not a versioned set; import it "
                f"(safeaudit negation-set import {self.negation_ref()} --name NAME) and name the set instead"
            )
        return None

    def pin_data(self, model: str, height: int, width: int) -> dict[str, Any]:
        """Overrides that pin the set to the exact version for (model, size): ``negation_set: name@hash``."""
        source = self.negation_source(model, height, width) if self.active else None
        return {"negation_set": pinned(source[1])} if source and source[0] == "artifact" else {}

    def concept_fields(self) -> dict[str, Any]:
        if not self.active:
            return {}
        out: dict[str, Any] = {"negation_set": self.negation_ref()}
        try:
            source = self.negation_source()
        except NegationSetError:
            source = None  # setup() fails with the reason
        if source is None:
            out["negation_hash"] = None
        elif source[0] == "artifact":
            out["negation_hash"] = source[1]["set_hash"]
        else:
            try:
                out["negation_hash"] = negation_content_hash(source[1])
            except FileNotFoundError:
                out["negation_hash"] = None
        return out

    def family_error(self, family: str) -> str | None:
        return super().family_error(family) or self.base.family_error(family)  # the base must run there too

    def _negation_set(self, ctx: Context) -> NegationSet:
        s, cfg = ctx.settings, self.config
        try:  # the version for this model and size when the name has several, else let the check say why
            source = self.negation_source(model_key(ctx.components.model_id), s.height, s.width)
        except NegationSetError:
            source = self.negation_source()
        if source is None:
            raise ValueError(
                "safe_denoiser: no negation set (concept pack `negation_set` or config `negation_set`)"
            )
        if source[0] == "folder":
            return load_negation_set(
                ctx.components, source[1], s.height, s.width, cfg.vae_latent, cfg.vae_seed
            )
        neg = load_artifact(ctx.components, source[1], s.height, s.width)
        recorded = self.concept_fields().get("negation_hash")
        # A pinned reference (``name@hash``, what run-spec validation writes) is what the generation id
        # names: it must be the set used. An unpinned name (the Python API, a one-off sample) takes the
        # version that fits this model and size; each image records it in ``sd_negation_set``.
        if parse_ref(self.negation_ref())[1] is not None and recorded != neg.content_hash:
            raise NegationSetError(
                f"negation set {self.negation_ref()!r} resolves to {neg.content_hash} for this model but to "
                f"{recorded} without one; pin it as {pinned(source[1])}"
            )
        return neg

    def resolved_config(self) -> dict[str, Any]:
        out = super().resolved_config()
        out["base"] = self.base.resolved_config()
        return out

    # -- hooks: the base method's, except step ----------------------------------------------------------
    def setup(self, ctx: Context) -> None:
        self.base.setup(ctx)
        cfg = self.config
        # per window step: log-mass (B,) and gate (B,) stay on the device until finish (no per-step sync)
        ctx.state["sd_logmass"] = []
        ctx.state["sd_gated"] = []
        ctx.state["sd_window"] = [self.config.t_end <= t <= self.config.t_start for t in ctx.host_timesteps]
        if not self.active:
            return
        neg = self._negation_set(ctx)
        refs = neg.latents.to(ctx.device, torch.float64)
        if cfg.variant == "official":
            refs = normalise_per_location(refs)
        ctx.state["sd_refs"] = refs.flatten(1)
        ctx.state["sd_negation_hash"] = neg.content_hash
        ctx.state["sd_generators"] = [
            torch.Generator("cpu").manual_seed(_aux_seed(r.seed)) for r in ctx.requests
        ]
        ctx.state["sd_log_threshold"] = self._log_threshold(ctx, neg.latents) if cfg.gate else -math.inf
        window = [i for i, inside in enumerate(ctx.state["sd_window"]) if inside]
        if cfg.variant == "paper":  # (a, s) per window step, read to the host once here
            ctx.state["sd_noise_levels"] = {i: self._noise_level(ctx, i, ctx.timesteps[i]) for i in window}
        if cfg.renoise == "official":
            ctx.state["sd_xi"] = self._window_noise(ctx, len(window))

    def unet_inputs(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.unet_inputs(ctx, i, t, latents)

    def guide(self, ctx: Context, i: int, t: torch.Tensor, eps_rows: torch.Tensor) -> torch.Tensor:
        return self.base.guide(ctx, i, t, eps_rows)

    def unet_hooks(self, ctx: Context) -> AbstractContextManager[None]:
        return self.base.unet_hooks(ctx)

    def in_window(self, t: torch.Tensor | float) -> bool:
        return self.config.t_end <= float(t) <= self.config.t_start

    def _window_noise(self, ctx: Context, n_steps: int) -> list[torch.Tensor]:
        """ξ for every window step, drawn up front and moved to the device once: per request from its own
        stream, one (1, C, h, w) draw per step in step order — the very draws the loop used to make."""
        shape = (1, ctx.components.unet.config.in_channels) + tuple(
            s // ctx.components.vae_scale_factor for s in (ctx.settings.height, ctx.settings.width)
        )
        if not n_steps:
            return []
        per_request = [
            torch.cat([torch.randn(shape, generator=g) for _ in range(n_steps)])
            for g in ctx.state["sd_generators"]
        ]
        xi = torch.stack(per_request, dim=1).to(ctx.device, ctx.dtype)  # (steps, B, C, h, w)
        return list(xi.unbind(0))

    def step(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        if not self.active or not ctx.state["sd_window"][i]:
            return self.base.step(ctx, i, t, latents, eps)
        cfg = self.config
        refs = ctx.state["sd_refs"]
        # 1. x̂0 from the base method's guided ε̃ (closed form: no scheduler call, no random draw)
        x0 = ctx.predict_x0(latents, eps, i, t)
        # 2. kernel estimate of the unsafe denoiser and the edited x̂0
        if cfg.variant == "official":
            query = normalise_per_location(x0.double()) if cfg.query_norm else x0
            logmass, e_unsafe = official_kernel(query.flatten(1), refs, cfg.sigma, cfg.kernel_eps)
            x0_new = x0.double() - cfg.eta * e_unsafe.view(x0.shape)
        else:
            a, s = ctx.state["sd_noise_levels"][i]
            logmass, e_unsafe = paper_kernel(latents.flatten(1), refs, a, s)
            beta = logmass.exp().clamp(max=cfg.beta_max).view(-1, 1, 1, 1)
            x0_new = x0.double() + cfg.eta * beta * (x0.double() - e_unsafe.view(x0.shape))
        x0_new = x0_new.to(x0.dtype)
        # 3. the gate, per image
        gated = logmass > ctx.state["sd_log_threshold"]
        # 4. re-noise at the same level; ξ from the method's own streams, drawn whether gated or not
        if cfg.renoise == "official":
            noise = ctx.state["sd_xi"][len(ctx.state["sd_logmass"])].to(latents.dtype)  # drawn in setup
        else:
            noise = ctx.predict_noise(latents, eps, i, t)  # ε itself on ε-models; z + (1 − σ)·v on flow
        edited = ctx.renoise(x0_new, noise, i, t)
        latents = torch.where(gated.to(latents.device).view(-1, 1, 1, 1), edited, latents)
        ctx.state["sd_logmass"].append(logmass)
        ctx.state["sd_gated"].append(gated)
        # 5. the base method's own step, with the old ε̃
        return self.base.step(ctx, i, t, latents, eps)

    def finish(self, ctx: Context) -> None:
        self.base.finish(ctx)
        threshold = ctx.state.get("sd_log_threshold")
        steps = ctx.state["sd_logmass"]
        # one device→host copy for the whole call: (window steps, B) → per image
        per_image = torch.stack(steps, dim=1).cpu().tolist() if steps else [[] for _ in ctx.requests]
        gated = (
            torch.stack(ctx.state["sd_gated"], dim=1).sum(dim=1).tolist() if steps else [0] * ctx.batch_size
        )
        for k, diag in enumerate(ctx.diagnostics):
            masses = per_image[k]
            # this method acted iff its gate opened at least once; what the base method did is its own
            diag["base_acted"] = diag.get("acted")
            diag["acted"] = int(gated[k]) > 0
            diag["sd_negation_set"] = ctx.state.get("sd_negation_hash")
            diag["sd_variant"] = self.config.variant
            diag["sd_gated_steps"] = int(gated[k])
            diag["sd_window_steps"] = len(masses)
            diag["sd_kernel_logmass"] = float(np.mean(masses)) if masses else None  # log K (official) / log β
            diag["sd_kernel_logmass_steps"] = [round(m, 6) for m in masses]
            diag["sd_log_threshold"] = (
                None if threshold is None or math.isinf(threshold) else float(threshold)
            )

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _noise_level(ctx: Context, i: int, t: torch.Tensor) -> tuple[float, float]:
        """(a, s) with z_t = a·x0 + s·ε at step i, read off the shared re-noising (works in σ space too)."""
        one = torch.ones(1, device=ctx.device, dtype=torch.float32)
        zero = torch.zeros_like(one)
        return float(ctx.renoise(one, zero, i, t)), float(ctx.renoise(zero, one, i, t))

    def _log_threshold(self, ctx: Context, latents: torch.Tensor) -> float:
        """§4.3 step 5: kernel masses of the references noised to the smallest timestep → quantile − margin."""
        cfg = self.config
        if cfg.gate_threshold is not None:
            return math.log(cfg.gate_threshold) if cfg.gate_threshold > 0 else -math.inf
        last = len(ctx.timesteps) - 1
        a, s = self._noise_level(ctx, last, ctx.timesteps[last])
        xi = torch.randn(
            latents.shape, generator=torch.Generator("cpu").manual_seed(cfg.gate_seed), dtype=torch.float64
        )
        refs = ctx.state["sd_refs"]
        if cfg.variant == "official":
            noised = a * normalise_per_location(latents.double()) + s * xi
            if cfg.query_norm:
                noised = normalise_per_location(noised)
            logmass, _ = official_kernel(noised.flatten(1).to(refs.device), refs, cfg.sigma)
        else:
            noised = a * latents.double() + s * xi
            logmass, _ = paper_kernel(noised.flatten(1).to(refs.device), refs, a, s)
        return log_threshold(logmass, cfg.gate_quantile, cfg.gate_margin)
