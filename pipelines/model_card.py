"""The toy model's card: ``README.md`` in its folder, from the training record and a measurement.

The training record is ``safeaudit.json`` (written by ``models/toy/train.py``); the measurement is
``pipelines.toy_eval.measure`` (``safeaudit toy evaluate DIR --card`` writes both into the card).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from models.toy.render import COLOUR_NAMES, SHAPES
from models.toy.train import TEXT_HIDDEN
from pipelines.scorers.toy import ToyConceptScorer


def write_model_card(model_dir: str | os.PathLike, res: dict, notes: str = "") -> Path:
    """Write `model_dir/README.md` from the training record (safeaudit.json) and a ``toy_eval.measure`` result."""
    model_dir = Path(model_dir)
    rec = json.loads((model_dir / "safeaudit.json").read_text())
    cfg = rec["config"]
    size_mb = (
        sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file() and f.name != "README.md") / 2**20
    )
    pc = ", ".join(f"{c} {v:.0%}" for c, v in res["per_colour_colour_match"].items())
    ps = ", ".join(f"{s} {v:.0%}" for s, v in res["per_shape_shape_match"].items())
    gap = rec["loss_gap"]
    text = f"""# safeaudit toy model (`builtin:toy`)

A tiny Stable-Diffusion-architecture text-to-image model trained from scratch on CPU on procedural 64x64
renders of one flat-coloured shape on a light background. RED is the toy world's declared *unsafe* concept;
orange, pink and purple are the proximal benign colours, blue, green and yellow the far ones. It exists so
that safety methods can be audited end to end, and their removal of red measured, without real weights.

## Data
`models/toy/render.py`: one of {len(SHAPES)} shapes ({", ".join(SHAPES)}) in one of 7 colours
({", ".join(COLOUR_NAMES)}; hues 0/30/326/275/225/129/54 degrees, +-10 per-channel jitter), radius 12-26 px,
random position, +-20 degree rotation, white to light-grey background, 4x super-sampled. {cfg["n_images"]:,}
training images (seed {cfg["seed"]}); captions drawn per step from the templates "a {{colour}} {{shape}}",
"... on a white background", "a picture of a ...", "a drawing of a ...", "{{colour}} {{shape}}", and
"a small/large ..." when the size fits. Note: the article is always "a" ("a orange circle"), as in training.

## Architecture (diffusers / transformers classes, float16 weights, {size_mb:.1f} MB)
| part | class | config | params |
|---|---|---|---|
| text encoder | CLIPTextModel | hidden {TEXT_HIDDEN}, {cfg["text_layers"]} layers, 4 heads, vocab 49,408, 77 positions | {rec["params"]["text_encoder"]:,} |
| tokenizer | CLIPTokenizer | the real CLIP BPE (models/assets/clip_tokenizer) | - |
| VAE | AutoencoderKL | channels {tuple(cfg["vae_channels"])}, 8x down-sampling, 4 latent channels, scaling_factor {rec["scaling_factor"]:.4f} (1/std of latents) | {rec["params"]["vae"]:,} |
| UNet | UNet2DConditionModel | sample 8x8, channels {tuple(cfg["unet_channels"])}, {cfg["unet_layers"]} layers/block, cross-attention at every level, cross_attention_dim {TEXT_HIDDEN} | {rec["params"]["unet"]:,} |
| scheduler | PNDMScheduler | SD 1.x: scaled_linear 0.00085-0.012, 1000 steps, epsilon, skip_prk_steps | - |

## Training (`python -m models.toy.train --out DIR`, seed {cfg["seed"]})
1. VAE: {cfg["vae_steps"]} steps, batch {cfg["vae_batch"]}, AdamW lr {cfg["vae_lr"]}, MSE + 0.1 L1 + KL x {cfg["vae_kl"]}.
2. Text encoder, text only: {cfg["text_steps"]} steps, batch {cfg["text_batch"]}, lr {cfg["text_lr"]}, auxiliary colour/shape
   classification heads on the pooled output and on the mean token state (heads discarded); then frozen.
3. UNet: {cfg["unet_steps"]} steps, batch {cfg["unet_batch"]}, AdamW lr {cfg["unet_lr"]} (warm-up {cfg["unet_warmup"]}, cosine to 10%),
   DDPM epsilon objective on the SD schedule, min-SNR-{cfg["snr_gamma"]:g} weighting, {cfg["caption_dropout"]:.0%} caption dropout to "",
   on cached VAE posteriors (sampled per step) and cached text states.
Right-vs-empty-caption noise-prediction loss gap (512 held-out draws, uniform t): **{gap["gap"]:.1%}**
(MSE {gap["mse_right"]:.4f} vs {gap["mse_empty"]:.4f}; {gap["gap_t500"]:.1%} for t >= 500).
{notes}
## Measured quality (`safeaudit toy evaluate models/toy/weights --card`)
{res["sampler"]}, diffusers StableDiffusionPipeline with DDIMScheduler, {res["n"]} prompts (every colour x shape,
balanced, random template, evaluation seed {res["seed"]}), scored by the rule-based toy scorers
(`pipelines/scorers/toy.py`):

| metric | value |
|---|---|
| `toy_fidelity` match (colour and shape) | **{res["match"]:.1%}** |
| `toy_fidelity` colour_match | {res["colour_match"]:.1%} |
| `toy_fidelity` shape_match | {res["shape_match"]:.1%} |
| red prompts flagged by `toy_concept` (red_fraction > {ToyConceptScorer.default_threshold}) | **{res["red_flag_rate_red_prompts"]:.1%}** |
| non-red prompts flagged by `toy_concept` | {res["red_flag_rate_nonred_prompts"]:.1%} |

Colour match per requested colour: {pc}.
Shape match per requested shape: {ps}.

The scorers themselves, on fresh renders (seed 987654, 280 images; asserted in tests/test_toy.py):
colour {res.get("scorer_colour_acc", float("nan")):.1%}, shape {res.get("scorer_shape_acc", float("nan")):.1%}, red flag correct {res.get("scorer_red_acc", float("nan")):.1%}.

## Use
```python
from diffusers import StableDiffusionPipeline, DDIMScheduler
pipe = StableDiffusionPipeline.from_pretrained("models/toy/weights")  # float32 on load
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
img = pipe("a red star", height=64, width=64, num_inference_steps=20, guidance_scale=7.5).images[0]
```
or `models.components.load_components("builtin:toy")`. The negation set for the Safe Denoiser is
`models/toy/negation/` (32 renders of red shapes).
"""
    (model_dir / "README.md").write_text(text)
    return model_dir / "README.md"
