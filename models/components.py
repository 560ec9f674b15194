"""Load (or build) the parts of a Stable Diffusion pipeline: tokenizer, text encoder, UNet, VAE, scheduler.

A model is named by a Hugging Face hub id (``CompVis/stable-diffusion-v1-4``), a local folder in diffusers
layout, or a built-in alias: ``builtin:tiny`` (random weights, SD architecture at toy size, built on first
use and cached) or ``builtin:toy`` (the project's trained toy model, see ``models/toy``). Weights are never
required from a hub at test time: missing weights fail with one line that says how to pass a local folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets"
CLIP_TOKENIZER_DIR = ASSETS / "clip_tokenizer"
REPO_ROOT = Path(__file__).resolve().parent.parent
TOY_MODEL_DIR = Path(__file__).resolve().parent / "toy" / "weights"
TINY_SEED = 0

# SD 1.x noise schedule; `skip_prk_steps` so PNDM works at any step count (its PRK warm-up fails below 4).
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one line a user can act on."""


@dataclass
class Components:
    """The loaded parts of one text-to-image model, plus where they came from (recorded per generation)."""

    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_config: dict
    model_id: str
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)


def load_clip_tokenizer(path: str | os.PathLike | None = None):
    """The CLIP BPE tokenizer (49,408 ids). transformers 5 ignores vocab_file=/merges_file= arguments,
    so it must come through ``from_pretrained`` on a folder."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(path or CLIP_TOKENIZER_DIR), model_max_length=77)


def tiny_configs(text_hidden: int = 32) -> dict[str, dict]:
    """Configs of a Stable-Diffusion-architecture model at toy size (random weights time like the real parts
    only at full size; these exist so every code path runs on CPU in seconds)."""
    return {
        "text_encoder": dict(
            vocab_size=49408,
            hidden_size=text_hidden,
            intermediate_size=37,
            num_hidden_layers=5,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=text_hidden,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        ),
        "unet": dict(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=text_hidden,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        "vae": dict(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(16, 16, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=16,
            sample_size=64,
        ),
    }


def build_tiny_pipeline(seed: int = TINY_SEED):
    """A diffusers StableDiffusionPipeline with random weights and the real CLIP tokenizer."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = tiny_configs()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg["unet"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**cfg["vae"])
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))
    scheduler = PNDMScheduler.from_config(
        {k: v for k, v in SD_SCHEDULER_CONFIG.items() if k != "_class_name"}
    )
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=load_clip_tokenizer(),
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_tiny_model(out_dir: str | os.PathLike, seed: int = TINY_SEED) -> Path:
    """Write a tiny random SD pipeline folder that ``StableDiffusionPipeline.from_pretrained`` loads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_tiny_pipeline(seed).save_pretrained(str(out), safe_serialization=True)
    (out / "safeaudit.json").write_text(json.dumps({"kind": "tiny-random", "seed": seed}) + "\n")
    return out


def resolve_model(model: str) -> tuple[str, Path | None]:
    """Map a model name to (id recorded in the warehouse, local folder or None for a hub id)."""
    if model == "builtin:tiny":
        cache = Path(os.environ.get("SAFEAUDIT_CACHE", REPO_ROOT / ".cache")) / f"tiny-model-seed{TINY_SEED}"
        if not (cache / "model_index.json").exists():
            tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
            write_tiny_model(tmp)
            try:
                tmp.rename(cache)
            except OSError:  # another process won the race; its folder is identical
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
        return model, cache
    if model == "builtin:toy":
        if not (TOY_MODEL_DIR / "model_index.json").exists():
            raise ModelLoadError(
                f"model 'builtin:toy': no trained weights at {TOY_MODEL_DIR} (train them with `safeaudit toy train`)"
            )
        return model, TOY_MODEL_DIR
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "unet").is_dir():
            raise ModelLoadError(f"model folder {path} is not in diffusers layout (no unet/ subfolder)")
        return str(path.resolve()), path
    if model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1):
        raise ModelLoadError(f"model folder {model} does not exist")
    return model, None


def _dtype(name: str):
    import torch

    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        raise ModelLoadError(f"dtype {name!r} is not one of float32, float16, bfloat16") from None


def load_components(
    model: str, revision: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> Components:
    """Load tokenizer, text encoder, UNet and VAE from a local folder or a hub id (cache first)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    model_id, local = resolve_model(model)
    source = str(local) if local is not None else model
    torch_dtype = _dtype(dtype)
    kwargs: dict[str, Any] = {} if local is not None else {"revision": revision}
    try:
        import transformers.utils.logging as tlog

        tlog.set_verbosity_error()
        tokenizer_src = source
        if local is not None and not (local / "tokenizer").is_dir():
            tokenizer_src = str(CLIP_TOKENIZER_DIR)
            tokenizer = load_clip_tokenizer()
        else:
            tokenizer = CLIPTokenizer.from_pretrained(
                tokenizer_src, subfolder="tokenizer", model_max_length=77, **kwargs
            )
        text_encoder = CLIPTextModel.from_pretrained(
            source, subfolder="text_encoder", torch_dtype=torch_dtype, **kwargs
        )
        unet = UNet2DConditionModel.from_pretrained(
            source, subfolder="unet", torch_dtype=torch_dtype, **kwargs
        )
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=torch_dtype, **kwargs)
        from diffusers import DDIMScheduler

        scheduler_config = dict(DDIMScheduler.load_config(source, subfolder="scheduler", **kwargs))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every load failure becomes one actionable line
        if local is not None:
            raise ModelLoadError(
                f"model folder {local} could not be loaded: {type(exc).__name__}: {exc}".split("\n")[0]
            ) from None
        raise ModelLoadError(
            f"model {model!r} (revision {revision or 'main'}) is not in the local Hugging Face cache and the hub "
            f"is unreachable; pass a local folder in diffusers layout (model: /path/to/model) or use builtin:tiny"
        ) from None
    for part in (text_encoder, unet, vae):
        part.to(device).eval().requires_grad_(False)
    return Components(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        vae=vae,
        scheduler_config=scheduler_config,
        model_id=model_id,
        revision=revision,
        dtype=dtype,
        device=device,
    )
