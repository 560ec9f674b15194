"""``safree``: SAFREE (Yoon, Yu, Patil, Yao, Bansal; ICLR 2025; arXiv 2410.12761), docs/specs/methods.md §2.

SAFREE edits the *text conditioning*, not the denoising arithmetic. Per distinct prompt, once per call:

A. toxic subspace: the pooled CLIP states of the K toxic keywords span C; P_C = C(CᵀC)⁺Cᵀ;
B. input space: the prompt's n tokens are masked one at a time (token id 0, "!"), the n pooled states span
   E; P_I = E(EᵀE)⁺Eᵀ;
C. triggers (Eq. 2–4): d_i = ‖(I − P_C)·p_{\\i}‖; token i is a trigger iff d_i ≥ (1+α)·mean_{j≠i} d_j
   (removing it moves the prompt away from the toxic subspace). A one-token prompt has no j ≠ i: the
   released code takes the mean of an empty set (NaN), its "keep" test ``d < (1+α)·NaN`` is false, so the
   token is flagged and projected (``single_token="release"``, every level but ``paper``); ours,
   ``single_token="skip"`` (the ``paper`` level, whose Eq. 4 is undefined there), flags nothing;
D. projection (Eq. 5): h_k^proj = (I − P_C)·P_I·h_k on the token-level states (the released code's order;
   the paper writes P_I·(I − P_C)); the safe embedding replaces only trigger positions,
   h ← h + ρ·(h^proj − h) with ρ = ``projection_strength`` (1 = official);
E. self-validating filter (Eq. 6): β = 1 − mean cos(h^proj, h) over the tokenizer's attention mask; the safe
   embedding is used for step indices i ≤ t', the original afterwards. Official code: t' =
   round(γ·σ(sigmoid_scale·k·(10β − t₀))); paper: t' = round(γ·σ(β)). Each prompt has its own t', so rows
   of one batch switch back at different steps. β always uses the full projection, whatever ρ;
F. loop: [c_neg ; h^safe-or-h], where the released script sets c_neg to the keywords joined with ", "
   (``negative_prompt``: its own switch, recorded — it has a large effect of its own; when on it replaces
   the run's ``SamplerSettings.negative_prompt``, as the released script does);
G. LRA (Eq. 7–8): a no-op as released (only a third batch row [c_neg ; h^safe ; h] whose output is
   discarded: ``lra="official"``); ``lra="paper"`` damps, on the filtered branch only, the low-frequency
   Fourier coefficients of the up-block skip features where |F_safe| > |F_orig|.

Batching: the released pipeline is batch size 1. Here every request row gets the precomputation of its
prompt (computed once per distinct prompt); the text encoder runs one batched pass over all masked copies
(Σn rows), plus the sampler's prompt pass (one row per distinct prompt) and one negative-prompt row. The K
keyword rows and P_C are cached per (keyword token ids, text encoder, its weights, device) across calls, so
they are computed once per model, not once per call.

Numerics: projections run in float32 whatever the UNet dtype (cast back after). We form each projector
from an SVD of its columns, P = C·C⁺, which equals C(CᵀC)⁺Cᵀ exactly but does not square the condition
number — the n masked-prompt states are nearly collinear, so the Gram-matrix route is ill-conditioned.

Levels — a ladder where every knob moves one way only (never weaker from one level to the next):

=========  ======  ======  ============  =====================================================
level      γ       α       neg. prompt   notes
=========  ======  ======  ============  =====================================================
off        —       —       off           T_f = 0: no projection; the baseline bit for bit
weak       2       0.05    off           projection only, ≤ 3 early steps, fewer triggers
medium     5       0.01    on            adds the keyword negative prompt
strong     10      0.01    on            the official hyper-parameters (without the LRA row)
max        all     0.00    on            SVF off: safe embedding at every step, more triggers
official   10      0.01    on            exact released setting, incl. the discarded LRA row
paper      10      0.01    off           paper SVF form, paper operator order, LRA as in the paper
=========  ======  ======  ============  =====================================================

Trade-off: the projection touches only prompts with triggers and only early steps, so benign prompts keep
their fidelity at weak; the negative prompt changes the unconditional branch of *every* prompt (a benign
prompt pays it too), which is why it joins at medium and not before. ``max`` gives up SAFREE's own
adaptivity (the SVF) for removal. Note that at α = 0.01 almost every prompt of two or more tokens has a
trigger (its most "toxic-looking" token usually exceeds the leave-one-out mean by 1%); the SVF is what
keeps benign prompts close to the original.

Knob: ``up_t`` (γ), the SVF's cap on the filtered steps; t' is non-decreasing in γ for every prompt.
Setting the knob also switches the SVF on and clears a forced step budget, so it is live on any level
(``off`` + knob = projection alone, no negative prompt). γ = 0 still filters step 0 (t' = 0 means i ≤ 0),
as released; the origin of a trade-off curve is the baseline run.

Families (``models/families.py`` says what the release does per family, with the files): SD and SDXL follow
the release — on SDXL only encoder 2's channels are projected, with its projected pooled subspaces, and the
pooled embeds are left alone. The SDXL release runs without the SVF (projected states at every step): level
``official_sdxl`` is that setting; every other level keeps the SVF on SDXL, which is ours there. SD3 is ours (the release projects in T5 space, which needs a T5 tokenizer: we
apply the SDXL recipe to SD3's CLIP-G).
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from models.families import safree_view
from models.method import MethodConfig, SafetyMethod

if TYPE_CHECKING:
    from models.sampler import Context

SVF_VARIANTS = ("official", "paper")
OPERATOR_ORDERS = ("official", "paper")
LRA_MODES = ("off", "official", "paper")
SINGLE_TOKEN_RULES = ("release", "skip")
KEYWORD_SEPARATOR = ", "  # how the released script joins the toxic keywords into its negative prompt
MASK_TOKEN_ID = 0  # "!", the first BPE entry; the released code "masks" a token by writing id 0
ENCODER_CHUNK = 256  # rows per text-encoder call (masked copies of many prompts)
KEYWORD_CACHE_SIZE = 8  # keyword sets remembered per text encoder


@dataclass(frozen=True)
class SAFREEConfig(MethodConfig):
    """Defaults are the released code's nudity setting (docs/specs/methods.md §2.3), except ``lra`` (see ``lra``)."""

    alpha: float = 0.01  # trigger margin α (Eq. 4); lower flags more tokens
    up_t: float = 10.0  # γ: the SVF's maximum t' (the continuous knob)
    svf: bool = True  # self-validating filter; off = safe embedding at every step (re_attn_t = [-1, 1001])
    svf_variant: str = "official"  # "official": steep sigmoid of the code; "paper": t' = γ·σ(β)
    svf_k: float = 2.5  # f_beta's k (nudity 2.5, artists 3.5)
    svf_t0: float = 5.333  # f_beta's t₀ (nudity 5.333, artists 5.5)
    sigmoid_scale: float = 2.0
    operator_order: str = "official"  # "official": (I − P_C)·P_I·h; "paper": P_I·(I − P_C)·h
    projection_strength: float = 1.0  # ρ: h ← h + ρ·(h^proj − h) on trigger positions
    forced_filtered_steps: int | None = None  # T_f: bypass the SVF and filter steps i < T_f (§2.4)
    negative_prompt: bool = True  # c_neg = keywords joined with ", " (on in the released script)
    # "off": 2 rows (default, saves a third of the UNet compute); "official": the released 3-row batch whose
    # third output is discarded (same images up to batched-kernel rounding, the released cost);
    # "paper": low-frequency damping of the filtered branch's skip features (docs/specs/methods.md §2.2 G)
    lra: str = "off"
    lra_s1: float = 0.9  # damping for skip features beside the deepest hidden states (1280 ch in SD 1.x)
    lra_s2: float = 0.2  # ... beside the next ones (640 ch)
    lra_window: int = 1  # half-width of the central low-frequency window of the shifted spectrum
    # a one-token prompt: "release" flags and projects it (the released code's empty leave-one-out mean);
    # "skip" (ours) flags nothing, since Eq. 4 has no other token to compare with
    single_token: str = "release"

    def __post_init__(self) -> None:
        # one canonical type per field, so 10 and 10.0 hash to the same generation id
        for name in (
            "alpha",
            "up_t",
            "svf_k",
            "svf_t0",
            "sigmoid_scale",
            "projection_strength",
            "lra_s1",
            "lra_s2",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.forced_filtered_steps is not None:
            object.__setattr__(self, "forced_filtered_steps", int(self.forced_filtered_steps))
            if self.forced_filtered_steps < 0:
                raise ValueError(f"forced_filtered_steps must be >= 0, got {self.forced_filtered_steps}")
        for name, allowed in (
            ("svf_variant", SVF_VARIANTS),
            ("operator_order", OPERATOR_ORDERS),
            ("lra", LRA_MODES),
            ("single_token", SINGLE_TOKEN_RULES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0.0 <= self.projection_strength <= 1.0:
            raise ValueError(f"projection_strength must be in [0, 1], got {self.projection_strength}")
        if self.up_t < 0:
            raise ValueError(f"up_t must be >= 0, got {self.up_t}")


# -- the algebra (pure functions of tensors; tested on hand-made vectors) -----------------------------------


def projector(columns: torch.Tensor) -> torch.Tensor:
    """Orthogonal projector onto the span of the columns of C (D×K): P = C(CᵀC)⁺Cᵀ = C·C⁺, in float32.

    Singular values below max(D, K)·eps·σ_max are treated as zero, the pseudo-inverse's usual cut-off."""
    c = columns.float()
    dim = c.shape[0]
    if c.shape[1] == 0:
        return c.new_zeros(dim, dim)
    u, s, _ = torch.linalg.svd(c, full_matrices=False)
    keep = s > s.max() * max(c.shape) * torch.finfo(torch.float32).eps
    u = u[:, keep]
    return u @ u.mT


def project_tokens(
    h: torch.Tensor, p_input: torch.Tensor, p_concept: torch.Tensor, order: str
) -> torch.Tensor:
    """h^proj for every row of h (L×D), Eq. 5: (I − P_C)·P_I·h ("official") or P_I·(I − P_C)·h ("paper")."""
    eye = torch.eye(p_concept.shape[0], dtype=torch.float32, device=p_concept.device)
    away = eye - p_concept
    operator = away @ p_input if order == "official" else p_input @ away
    return (operator @ h.float().mT).mT


def trigger_mask(distances: torch.Tensor, alpha: float, single_token: str = "release") -> torch.Tensor:
    """Eq. 4: token i is a trigger iff d_i ≥ (1+α)·mean_{j≠i} d_j.

    One token has no others. The released code compares with the mean of an empty set (NaN); its keep
    test fails, so the token is a trigger (``"release"``). ``"skip"`` (ours) flags nothing."""
    n = distances.numel()
    if n == 1 and single_token == "release":
        return torch.ones(1, dtype=torch.bool, device=distances.device)
    if n < 2:
        return torch.zeros(n, dtype=torch.bool, device=distances.device)
    leave_one_out_mean = (distances.sum() - distances) / (n - 1)
    return distances >= (1.0 + alpha) * leave_one_out_mean


def self_validation_beta(h: torch.Tensor, h_proj: torch.Tensor, attention: torch.Tensor) -> float:
    """β = 1 − mean_k cos(h_k^proj, h_k) over the positions of the tokenizer's attention mask (Eq. 6)."""
    keep = attention.bool()
    cos = F.cosine_similarity(h_proj[keep].float(), h[keep].float(), dim=-1)
    return float(1.0 - cos.mean())


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def svf_cutoff(beta: float, config: SAFREEConfig) -> int:
    """t': the last step index that uses the safe embedding (Eq. 6). Python's round, as in the released code."""
    if config.svf_variant == "paper":
        return round(config.up_t * _sigmoid(beta))
    return round(config.up_t * _sigmoid(config.sigmoid_scale * config.svf_k * (10.0 * beta - config.svf_t0)))


def filtered_steps(beta: float, config: SAFREEConfig, total_steps: int) -> int:
    """How many leading steps use the safe embedding: T_f if forced, all without the SVF, else t' + 1."""
    if config.forced_filtered_steps is not None:
        return min(config.forced_filtered_steps, total_steps)
    if not config.svf:
        return total_steps
    return min(svf_cutoff(beta, config) + 1, total_steps)


def low_frequency_damp(safe: torch.Tensor, orig: torch.Tensor, scale: float, window: int) -> torch.Tensor:
    """LRA, paper reading (Eq. 7–8): in the centred spectrum's (2w)×(2w) low-frequency window, multiply the
    safe branch's coefficients by s where |F_safe| > |F_orig|; back to space, real part (as FreeU does)."""
    dims = (-2, -1)
    f_safe = torch.fft.fftshift(torch.fft.fftn(safe.float(), dim=dims), dim=dims)
    f_orig = torch.fft.fftshift(torch.fft.fftn(orig.float(), dim=dims), dim=dims)
    height, width = safe.shape[-2:]
    low = torch.zeros(height, width, dtype=torch.bool, device=safe.device)
    ch, cw = height // 2, width // 2
    low[max(ch - window, 0) : ch + window, max(cw - window, 0) : cw + window] = True
    damp = low & (f_safe.abs() > f_orig.abs())
    f_safe = torch.where(damp, f_safe * scale, f_safe)
    out = torch.fft.ifftn(torch.fft.ifftshift(f_safe, dim=dims), dim=dims).real
    return out.to(safe.dtype)


# -- the toxic subspace, cached per (keywords, text encoder) -----------------------------------------------
# The K keyword rows and P_C depend only on the keyword token ids and the text encoder's weights, not on the
# prompts, so a one-prompt-per-call loop must not pay them on every call. Keyed weakly by the encoder object
# (a released model takes its entries with it), then by (token ids, device); an entry also records where
# each weight lives and its in-place write counter, so a reload, a ``.to()`` or an edited weight recomputes.
_KEYWORD_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ToxicSubspace:
    pooled: torch.Tensor  # (K, D) float32 pooled keyword states (read-only: shared between calls)
    p_concept: torch.Tensor  # (D, D) float32 P_C (read-only)
    hit: bool  # whether this call found it in the cache


def clear_keyword_cache() -> None:
    _KEYWORD_CACHE.clear()


def _weights_signature(module: torch.nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version, t.dtype) for t in (*module.parameters(), *module.buffers()))


# -- per-prompt precomputation -----------------------------------------------------------------------------


@dataclass
class _PromptPlan:
    """What SAFREE decides for one distinct prompt."""

    p_input: torch.Tensor  # D×D
    triggers: torch.Tensor  # (77,) bool over sequence positions
    safe: torch.Tensor  # (77, D) float32: the prompt's states with trigger positions projected (D)
    trigger_tokens: list[str]
    beta: float
    steps: int  # leading steps that use the safe embedding


class SAFREE(SafetyMethod):
    """Token projection away from a toxic keyword subspace, for an adaptive number of early steps."""

    name = "safree"
    version = "2"  # 2: one-token prompts flagged and projected as released (single_token)
    Config = SAFREEConfig
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "off": {"forced_filtered_steps": 0, "negative_prompt": False},
        "weak": {"up_t": 2.0, "alpha": 0.05, "negative_prompt": False},
        "medium": {"up_t": 5.0, "alpha": 0.01, "negative_prompt": True},
        "strong": {"up_t": 10.0, "alpha": 0.01, "negative_prompt": True},
        "max": {"svf": False, "alpha": 0.0, "negative_prompt": True},
        "official": {"lra": "official"},
        # the release's SDXL run (run_nudity_sdxl.sh + the SDXL pipeline): no SVF, the projected states at
        # every step, α 0.01, the keyword negative prompt, 2 UNet rows (no LRA row on SDXL)
        "official_sdxl": {"svf": False, "negative_prompt": True},
        "paper": {
            "svf_variant": "paper",
            "operator_order": "paper",
            "lra": "paper",
            "negative_prompt": False,
            "single_token": "skip",
        },
    }
    # where a level departs from the released code on purpose (printed by `safeaudit methods`)
    OURS: ClassVar[dict[str, str]] = {
        "weak": "ours: γ 2, α 0.05, no keyword negative prompt (release algorithm otherwise)",
        "medium": "ours: γ 5 (release algorithm otherwise)",
        "max": "ours: SVF off, α 0 (release algorithm otherwise)",
        "official_sdxl": "release on sdxl (its SDXL setting: no SVF); ours on sd and sd3",
        "paper": "ours: one-token prompts are not projected (single_token=skip); paper SVF, order and LRA",
    }
    KNOB = "up_t"
    KNOB_VALUES = (0.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0)
    FAMILIES: ClassVar[dict[str, str]] = {"sd": "release", "sdxl": "release", "sd3": "ours"}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {**super().describe(), "notes": dict(cls.OURS)}

    @classmethod
    def knob_to_config(cls, value: float) -> dict[str, Any]:
        # γ only acts through the SVF: make sure it is on and not overridden by a forced step budget
        return {"up_t": value, "svf": True, "forced_filtered_steps": None}

    # -- concept -------------------------------------------------------------------------------------------
    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(self.concept.safree_keywords) if self.concept is not None else ()

    @property
    def negative_text(self) -> str:
        return KEYWORD_SEPARATOR.join(self.keywords)

    def concept_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"safree_keywords": list(self.keywords)}
        if self.config.negative_prompt:
            out["negative_prompt"] = self.negative_text
        return out

    def family_error(self, family: str) -> str | None:
        if family == "sd3" and self.config.lra == "paper":  # the LRA hooks sit on UNet up-blocks
            return "method 'safree' with lra='paper' does not support model family 'sd3' (no UNet up-blocks)"
        return super().family_error(family)

    def missing_data(self, model: str, height: int, width: int) -> str | None:
        if (self.config.negative_prompt or self._projects()) and not self.keywords:
            pack = self.concept.pack_id if self.concept is not None else "none"
            return f"concept pack {pack} has no safree_keywords; add the toxic keyword list to the pack"
        return None

    def _projects(self) -> bool:
        return self.config.forced_filtered_steps != 0

    def _require_keywords(self) -> tuple[str, ...]:
        if not self.keywords:
            pack = self.concept.pack_id if self.concept is not None else "none"
            raise ValueError(f"safree needs a concept pack with safree_keywords (pack: {pack})")
        return self.keywords

    # -- hooks ---------------------------------------------------------------------------------------------
    def setup(self, ctx: Context) -> None:
        cfg = self.config
        neg = cfg.negative_prompt and ctx.do_cfg
        state: dict[str, Any] = {"negative_prompt": neg, "plans": None, "groups": 2 if ctx.do_cfg else 1}
        ctx.state["safree"] = state
        if neg or self._projects():
            self._require_keywords()
        if neg:  # F: the keyword list replaces the unconditional text (one row, shared by every request)
            ctx.uncond = ctx.encode_rows([self.negative_text] * ctx.batch_size)
        if not self._projects():
            return

        prompts = list(dict.fromkeys(ctx.prompts))
        plans = self._plan_prompts(ctx, prompts)
        rows = [prompts.index(p) for p in ctx.prompts]
        # D: every row takes its prompt's safe states (the sampler encodes each distinct prompt once, so
        # rows of one prompt have the same states)
        state["plans"] = plans
        state["rows"] = rows
        state["safe"] = torch.stack([plans[p].safe for p in rows]).to(ctx.cond.dtype)
        state["steps"] = torch.tensor([plans[p].steps for p in rows], device=ctx.device)
        state["has_trigger"] = torch.tensor([bool(plans[p].triggers.any()) for p in rows], device=ctx.device)

    @torch.no_grad()
    def _pooled(self, ctx: Context, ids: torch.Tensor) -> torch.Tensor:
        """Pooled CLIP output (EOS state after the final layer norm), float32. The causal mask makes it
        independent of the padding after EOS, so 77-token rows batch freely."""
        view = safree_view(ctx)  # sd: the CLIP pooler output; sdxl/sd3: encoder 2's projection
        out = [view.pooled(chunk.to(ctx.device)) for chunk in ids.split(ENCODER_CHUNK)]
        return torch.cat(out)

    def toxic_subspace(self, ctx: Context) -> ToxicSubspace:
        """A: the K keyword rows and P_C, from the cache when this encoder already computed them."""
        view = safree_view(ctx)
        encoder = view.encoder
        kw_ids = ctx.tokenize(list(self._require_keywords()), view.tokenizer)
        key = (tuple(map(tuple, kw_ids.tolist())), str(ctx.device))
        signature = _weights_signature(encoder)
        entries = _KEYWORD_CACHE.setdefault(encoder, OrderedDict())
        entry = entries.get(key)
        if entry is not None and entry[0] == signature:
            entries.move_to_end(key)
            return ToxicSubspace(entry[1], entry[2], hit=True)
        pooled = self._pooled(ctx, kw_ids)
        p_concept = projector(pooled.mT)
        entries[key] = (signature, pooled, p_concept)
        entries.move_to_end(key)
        while len(entries) > KEYWORD_CACHE_SIZE:
            entries.popitem(last=False)
        return ToxicSubspace(pooled, p_concept, hit=False)

    def _plan_prompts(self, ctx: Context, prompts: list[str]) -> list[_PromptPlan]:
        """A–E for each distinct prompt; one plan per prompt."""
        cfg = self.config
        view = safree_view(ctx)
        tok = view.tokenizer
        enc = tok(
            prompts,
            padding="max_length",
            max_length=tok.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids, attention = enc.input_ids, enc.attention_mask
        lengths = (attention.sum(dim=1) - 2).tolist()  # n real tokens between BOS and EOS

        # B: one copy per real token with that token replaced by id 0, for all prompts at once
        masked = []
        for p, n in enumerate(lengths):
            for i in range(1, n + 1):
                copy = ids[p].clone()
                copy[i] = MASK_TOKEN_ID
                masked.append(copy)
        # A: toxic subspace (cached); B: all masked copies in one batched text-encoder pass
        subspace = self.toxic_subspace(ctx)
        ctx.state["safree"]["keyword_cache_hit"] = subspace.hit
        p_concept = subspace.p_concept
        away = torch.eye(p_concept.shape[0], device=p_concept.device) - p_concept
        pooled = self._pooled(ctx, torch.stack(masked)) if masked else p_concept.new_zeros(0, len(away))

        plans, offset = [], 0
        first_row = {p: ctx.prompts.index(p) for p in prompts}
        for p, (prompt, n) in enumerate(zip(prompts, lengths, strict=True)):
            e = pooled[offset : offset + n].mT  # D×n
            offset += n
            p_input = projector(e)
            # C: distance of each leave-one-out prompt from the toxic subspace, Eq. 2–4
            distances = torch.linalg.vector_norm(away @ e, dim=0)
            flags = trigger_mask(distances, cfg.alpha, cfg.single_token)
            triggers = torch.zeros(ids.shape[1], dtype=torch.bool)
            triggers[1 : n + 1] = flags.cpu()
            # E: self-validation on the full projection of every attended position
            full = ctx.cond[first_row[prompt]].float()
            h = view.part(full)  # sdxl/sd3: encoder 2's channels of the 77 CLIP positions
            h_proj = project_tokens(h, p_input, p_concept, cfg.operator_order)
            beta = self_validation_beta(h, h_proj, attention[p].to(h.device))
            # D: the safe states replace only trigger positions, moved by ρ toward the projection
            mixed = h + cfg.projection_strength * (h_proj - h)
            plans.append(
                _PromptPlan(
                    p_input=p_input,
                    triggers=triggers,
                    safe=view.merge(full, torch.where(triggers.to(h.device)[:, None], mixed, h)),
                    trigger_tokens=tok.convert_ids_to_tokens(ids[p][triggers].tolist()),
                    beta=beta,
                    steps=filtered_steps(beta, cfg, len(ctx.timesteps)),
                )
            )
        return plans

    def unet_inputs(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        state = ctx.state["safree"]
        state["lra_rows"] = None
        if state["plans"] is None and self.config.lra == "off":
            return super().unet_inputs(ctx, i, t, latents)  # nothing to swap: the baseline's batch

        if state["plans"] is None:
            use = torch.zeros(ctx.batch_size, dtype=torch.bool, device=ctx.device)
            text = ctx.cond
        else:
            use = i < state["steps"]  # E: each row keeps its safe embedding up to its own t'
            text = torch.where(use[:, None, None], state["safe"], ctx.cond)
        groups = [text]
        pooled = [ctx.pooled("cond")]  # the pooled embeds are left alone (sdxl, sd3), as released
        lra_branch = self.config.lra == "official" or (self.config.lra == "paper" and bool(use.any()))
        if lra_branch:  # G: [.. ; filtered ; original]
            groups.append(ctx.cond)
            pooled.append(ctx.pooled("cond"))
        if ctx.do_cfg:
            groups.insert(0, ctx.uncond)
            pooled.insert(0, ctx.pooled("uncond"))
        if lra_branch and self.config.lra == "paper" and state["plans"] is not None:
            first = ctx.batch_size if ctx.do_cfg else 0
            rows = torch.nonzero(use & state["has_trigger"]).flatten()
            state["lra_rows"] = (first + rows, first + ctx.batch_size + rows) if rows.numel() else None
        state["groups"] = len(groups)
        return torch.cat([latents] * len(groups)), torch.cat(groups), ctx.extra_rows(pooled)

    def guide(self, ctx: Context, i: int, t: torch.Tensor, eps_rows: torch.Tensor) -> torch.Tensor:
        chunks = eps_rows.chunk(
            ctx.state["safree"]["groups"]
        )  # a third (LRA) chunk is discarded, as released
        if not ctx.do_cfg:
            return chunks[0]
        eps_uncond, eps_text = chunks[0], chunks[1]
        return eps_uncond + ctx.settings.guidance * (eps_text - eps_uncond)  # classifier-free guidance

    @contextlib.contextmanager
    def unet_hooks(self, ctx: Context) -> Iterator[None]:
        if self.config.lra != "paper":
            yield
            return
        unet = ctx.components.unet
        widths = sorted(set(unet.config.block_out_channels), reverse=True)
        damping = {widths[0]: self.config.lra_s1}
        if len(widths) > 1:
            damping[widths[1]] = self.config.lra_s2
        handles = [
            block.register_forward_pre_hook(self._skip_hook(ctx, block, damping), with_kwargs=True)
            for block in unet.up_blocks
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _skip_hook(
        self, ctx: Context, block: torch.nn.Module, damping: dict[int, float]
    ) -> Callable[..., tuple | None]:
        """A pre-hook on one up-block that damps the skip features its resnets will concatenate, choosing s
        by the width of the hidden state each skip joins (as the released FreeU patch does)."""
        window = self.config.lra_window

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple | None:
            rows = ctx.state["safree"].get("lra_rows")
            skips = kwargs.get("res_hidden_states_tuple")
            if rows is None or skips is None:
                return None
            filtered, original = rows
            skips = list(skips)
            for r, resnet in enumerate(block.resnets):  # resnet r consumes skips[-(r + 1)]
                k = len(skips) - 1 - r
                hidden_width = resnet.in_channels - skips[k].shape[1]
                scale = damping.get(hidden_width)
                if scale is None:
                    continue
                x = skips[k].clone()
                x[filtered] = low_frequency_damp(x[filtered], x[original], scale, window)
                skips[k] = x
            return args, {**kwargs, "res_hidden_states_tuple": tuple(skips)}

        return hook

    def finish(self, ctx: Context) -> None:
        state = ctx.state["safree"]
        cfg = self.config
        svf = "forced" if cfg.forced_filtered_steps is not None else (cfg.svf_variant if cfg.svf else "off")
        for b, diag in enumerate(ctx.diagnostics):
            plan = state["plans"][state["rows"][b]] if state["plans"] is not None else None
            projected = bool(plan is not None and plan.triggers.any() and plan.steps > 0)
            diag.update(
                # acted: the image differs from the baseline's by construction — a trigger token was
                # projected for at least one step, or the keyword negative prompt replaced c_∅
                acted=projected or bool(state["negative_prompt"]),
                safree_projected=projected,
                safree_trigger_count=int(plan.triggers.sum()) if plan else 0,
                safree_trigger_tokens=" ".join(plan.trigger_tokens) if plan else "",
                safree_filtered_steps=plan.steps if plan else 0,
                safree_beta=plan.beta if plan else float("nan"),
                safree_negative_prompt=bool(state["negative_prompt"]),
                safree_svf=svf,
                safree_lra=cfg.lra,
            )
