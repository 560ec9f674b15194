"""What differs between the model families (sd, sdxl, sd3) beyond the sampler's own loop: T5 states for SD3,
each family's schedulers, and the *text view* a token-space method (SAFREE) works in.

SAFREE per family, as the authors' release does it (jaehong31/SAFREE @ b8b2c3f, read for facts only):

- **sd** (``models/modified_stable_diffusion_pipeline.py``): the one CLIP encoder; the toxic subspace and the
  masked prompts are its pooled outputs (EOS state after the final layer norm, no projection); all channels
  of the 77 token states are projected. (docs/specs/methods.md §2.)
- **sdxl** (``models/modified_stable_diffusion_xl_pipeline.py``): only **encoder 2**'s channels are
  projected — the pipeline slices the concatenated token states at channel 768 (= CLIP-L's width) and
  writes the projected slice back, so encoder 1's channels, the negative branch and the **pooled text
  embeds are left alone**. The subspaces come from encoder 2's *projected* pooled output (``text_embeds``
  of ``CLIPTextModelWithProjection``; 1280-d, the same width as its token states): the keywords through
  ``_new_encode_prompt`` (77-token padding), the masked copies through ``_masked_encode_prompt``
  (``tokenizer_2`` with no padding, token i+1 set to id 0). Trigger rule as SD (α = 0.01, the script's
  ``--sf_alpha``). **No self-validating filter**: the pipeline computes no β and uses the projected states
  at every step in ``re_attn_t`` = [−1, 1001] (``run_nudity_sdxl.sh`` passes no ``-svf``), so SAFREE's SVF
  on SDXL (computing β on encoder 2's channels) is ours. The script's negative prompt is the keyword list
  joined with ", " (as on SD), DPM-Solver++ 50 steps, CFG 7.5, 512², fp16. (As published, the SDXL call
  passes ``safree=`` outside ``safree_dict`` while the pipeline reads ``sf["safree"]``: it would raise
  KeyError unless run patched; we follow the evident intent.)
- **sd3** (``sdv3/sdv3_pipeline.py``, ``sdv3/sdv3.py``): the release works in **T5** space — the toxic
  subspace and the masked copies are T5 states of the first position (``last_hidden_state[:, 0]``), the
  4096×4096 projector is applied to the whole joint sequence of the prompt branch (77 CLIP positions zero-
  padded to 4096, then 256 T5 positions; ``max_length=333``), and the trigger mask found over T5 token
  indices is written to sequence positions 1..n, i.e. onto the *CLIP* positions; α = 0.01 hard-coded, bf16
  matmuls, no SVF (the step gate is commented out: projected states at every step), pooled projections and
  the negative branch left alone, ``negative_prompt=""`` (no keyword negative prompt), 28 steps, CFG 7.0.
  That recipe needs T5, which no offline tokenizer here provides; **our SD3 SAFREE therefore applies the
  SDXL recipe to SD3's CLIP-G** (encoder 2's channels of the 77 CLIP positions, its projected pooled
  subspace; T5 positions and pooled projections untouched) and is declared ``'ours'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from models.sampler import Context

T5_MAX_LENGTH = 256  # diffusers' SD3 default max_sequence_length (the T5 rows, or their zeros)
DEFAULT_SCHEDULERS = {"sd": "ddim", "sdxl": "ddim", "sd3": "euler"}


def default_scheduler(family: str) -> str:
    """The scheduler a family samples with unless told otherwise (sd3: flow-matching Euler, its only one)."""
    return DEFAULT_SCHEDULERS[family]


def check_scheduler(family: str, name: str) -> None:
    """Refuse a scheduler the family cannot use, in one line (sd3 is flow matching: euler only)."""
    from models.registry import SCHEDULERS
    from models.sampler import FLOW_SCHEDULERS

    allowed = FLOW_SCHEDULERS if family == "sd3" else SCHEDULERS
    if name not in allowed:
        raise ValueError(
            f"scheduler {name!r} is not available for family {family!r}; choose one of {', '.join(allowed)}"
        )


@torch.no_grad()
def sd3_t5_states(ctx: Context, texts: list[str]) -> torch.Tensor:
    """SD3's T5 token states (B, 256, joint dim), or zeros of that shape when the model has no T5 — as
    diffusers' StableDiffusion3Pipeline does, so a T5-less SD3 folder conditions on CLIP alone."""
    c = ctx.components
    dtype = c.text_encoder.dtype
    if c.text_encoder_3 is None:
        return torch.zeros(
            len(texts), T5_MAX_LENGTH, c.unet.config.joint_attention_dim, device=ctx.device, dtype=dtype
        )
    ids = c.tokenizer_3(
        texts,
        padding="max_length",
        max_length=T5_MAX_LENGTH,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    return c.text_encoder_3(ids.to(ctx.device))[0].to(dtype)


# -- SAFREE's text view ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextView:
    """Where a token-space method works: which tokenizer/encoder gives the pooled vectors that span its
    subspaces, and which (positions, channels) of the sampler's token states they live in."""

    tokenizer: Any
    encoder: Any
    channels: slice  # of the token states' last dim
    positions: int = 77  # the first ``positions`` rows of the sequence (sd3: the CLIP part of the joint one)
    projected: bool = False  # pooled = the encoder's projection (text_embeds), not its pooler_output

    def pooled(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.encoder(ids, attention_mask=None)
        return (out.text_embeds if self.projected else out.pooler_output).float()

    def part(self, states: torch.Tensor) -> torch.Tensor:
        """The view's slice of one prompt's token states (L, D) → (77, d)."""
        return states[: self.positions, self.channels]

    def merge(self, states: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """``states`` with the view's slice replaced by ``part`` (a new tensor)."""
        out = states.clone()
        out[: self.positions, self.channels] = part.to(out.dtype)
        return out


def safree_view(ctx: Context) -> TextView:
    """SAFREE's text view for this call's family (see the module docstring for what the release does)."""
    c = ctx.components
    if ctx.family == "sd":
        return TextView(c.tokenizer, c.text_encoder, slice(None))
    width1 = c.text_encoder.config.hidden_size
    width2 = c.text_encoder_2.config.hidden_size
    if c.text_encoder_2.config.projection_dim != width2:
        raise ValueError(
            f"safree on {ctx.family}: encoder 2's projection ({c.text_encoder_2.config.projection_dim}) must have "
            f"the width of its token states ({width2}), as SDXL's and SD3's CLIP-G do"
        )
    return TextView(c.tokenizer_2, c.text_encoder_2, slice(width1, width1 + width2), projected=True)
