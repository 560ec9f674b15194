"""Load (or build) the parts of a text-to-image diffusion model: tokenizers, text encoders, denoiser, VAE,
scheduler — for three model families:

- ``sd``   Stable Diffusion 1.x/2.x: one CLIP text encoder, ``UNet2DConditionModel``;
- ``sdxl`` SDXL base: two CLIP text encoders (the second with a projection), a UNet with ``text_time``
  added conditioning (pooled text embeds + size/crop time ids); the refiner is not needed;
- ``sd3``  SD3 / 3.5: ``SD3Transformer2DModel`` (MMDiT, flow matching), CLIP-L and CLIP-G (both with a
  projection) and an optional T5 encoder (a folder without one works: zeros take its place, as diffusers
  does), a 16-channel VAE with a ``shift_factor``.

The family comes from the folder's ``model_index.json`` (``_class_name``) or the built-in's name, read by
:func:`family_of` without loading any weights. A model is named by a Hugging Face hub id
(``CompVis/stable-diffusion-v1-4``), a local folder in diffusers layout, or a built-in alias: ``builtin:tiny``,
``builtin:tiny-sdxl``, ``builtin:tiny-sd3`` (random weights at toy size, built on first use and cached) or
``builtin:toy`` (the project's trained toy model, see ``models/toy``). Weights are never required from a hub
at test time: missing weights fail with one line that says how to pass a local folder.

``Components.unet`` is the denoiser of every family (for SD3 it holds the transformer; ``.denoiser`` is an
alias), so code that only needs the denoiser's device, dtype or ``config.in_channels`` is family-blind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

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


FAMILIES = ("sd", "sdxl", "sd3")
# model_index.json ``_class_name`` → family (img2img/inpaint variants carry the same parts)
PIPELINE_FAMILIES: dict[str, str] = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "StableDiffusion3Img2ImgPipeline": "sd3",
    "StableDiffusion3InpaintPipeline": "sd3",
}
TINY_BUILTINS: dict[str, str] = {"builtin:tiny": "sd", "builtin:tiny-sdxl": "sdxl", "builtin:tiny-sd3": "sd3"}
BUILTIN_FAMILIES: dict[str, str] = {**TINY_BUILTINS, "builtin:toy": "sd"}

# SDXL-base's noise schedule and scheduler (EulerDiscrete, "leading" spacing), as its scheduler_config.json.
SDXL_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
    "clip_sample": False,
}
# SD3-medium's flow-matching scheduler: σ shifted by 3 (σ' = sσ / (1 + (s−1)σ)).
SD3_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "shift": 3.0,
}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one line a user can act on."""


def family_from_index(index: dict) -> str:
    """The family named by a model_index.json's ``_class_name``; unknown pipelines are refused."""
    name = str(index.get("_class_name", ""))
    if name in PIPELINE_FAMILIES:
        return PIPELINE_FAMILIES[name]
    raise ModelLoadError(
        f"model_index.json names pipeline {name!r}, which is none of the supported families "
        f"({', '.join(FAMILIES)}); supported pipelines: {', '.join(sorted(PIPELINE_FAMILIES))}"
    )


def _family_from_hub_cache(model: str, revision: str | None) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model, "model_index.json", revision=revision)
    except Exception:
        return None
    if isinstance(hit, str) and Path(hit).is_file():
        return family_from_index(json.loads(Path(hit).read_text()))
    return None


def family_of(model: str, revision: str | None = None) -> str:
    """'sd' | 'sdxl' | 'sd3' for a model name, without loading (or building) any weights.

    Built-ins by name; a local folder by its model_index.json; a hub id by the model_index.json in the local
    Hugging Face cache, else by its name (``stable-diffusion-3``/``sd3`` → sd3, ``xl`` → sdxl, else sd) —
    a run spec's ``family:`` key is the way to be explicit about an uncached hub model."""
    if model in BUILTIN_FAMILIES:
        return BUILTIN_FAMILIES[model]
    path = Path(model).expanduser()
    if path.exists():
        index = path / "model_index.json"
        if not index.is_file():
            if (path / "unet").is_dir():  # a bare SD-layout folder (no pipeline file) is SD
                return "sd"
            raise ModelLoadError(f"model folder {path} has no model_index.json (not in diffusers layout)")
        return family_from_index(json.loads(index.read_text()))
    cached = _family_from_hub_cache(model, revision)
    if cached is not None:
        return cached
    lowered = model.lower()
    if "stable-diffusion-3" in lowered or "sd3" in lowered:
        return "sd3"
    if "xl" in lowered:
        return "sdxl"
    return "sd"


@dataclass
class Components:
    """The loaded parts of one text-to-image model, plus where they came from (recorded per generation)."""

    tokenizer: Any
    text_encoder: Any
    unet: Any  # the denoiser: UNet2DConditionModel (sd, sdxl) or SD3Transformer2DModel (sd3)
    vae: Any
    scheduler_config: dict
    model_id: str
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    extra: dict = field(default_factory=dict)
    family: str = "sd"
    tokenizer_2: Any = None  # sdxl, sd3: CLIP-G (SDXL: OpenCLIP bigG) tokenizer
    text_encoder_2: Any = None  # sdxl, sd3: CLIPTextModelWithProjection
    tokenizer_3: Any = None  # sd3 only, optional: T5
    text_encoder_3: Any = None  # sd3 only, optional: T5EncoderModel (None → zeros, as diffusers)
    # pipeline-level settings from model_index.json (SDXL's ``force_zeros_for_empty_prompt``)
    pipeline_config: dict = field(default_factory=dict)

    @property
    def denoiser(self) -> Any:
        return self.unet

    @property
    def text_encoders(self) -> list[Any]:
        return [e for e in (self.text_encoder, self.text_encoder_2, self.text_encoder_3) if e is not None]

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def shift_factor(self) -> float:
        """SD3's VAE latents are (z − shift)·scale; 0 for the SD/SDXL VAEs."""
        return float(getattr(self.vae.config, "shift_factor", None) or 0.0)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)


def load_clip_tokenizer(path: str | os.PathLike | None = None) -> CLIPTokenizer:
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


def build_tiny_pipeline(seed: int = TINY_SEED) -> StableDiffusionPipeline:
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


def _clip_config(hidden: int, projection: int | None = None, layers: int = 5) -> dict:
    """A toy CLIP text-encoder config over the real 49,408-id BPE vocabulary."""
    return dict(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection or hidden,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


# Tiny SDXL: CLIP-L-like 32 + CLIP-G-like 32 hidden; encoder 2's projection = its hidden size (as in SDXL,
# 1280 = 1280: SAFREE's SDXL recipe projects encoder 2's token states with its pooled-projection subspace).
TINY_SDXL = {"te1": 32, "te2": 32, "time_dim": 8}
# Tiny SD3: 32 + 48 hidden, concatenated (80) and zero-padded to a joint dim of 96 (SD3: 768 + 1280 → 4096)
TINY_SD3 = {"te1": 32, "te2": 48, "joint": 96}


def build_tiny_sdxl_pipeline(seed: int = TINY_SEED) -> StableDiffusionXLPipeline:
    """A diffusers StableDiffusionXLPipeline with random weights at toy size and the real CLIP tokenizer."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    te1, te2, time_dim = TINY_SDXL["te1"], TINY_SDXL["te2"], TINY_SDXL["time_dim"]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=te1 + te2,  # the two encoders' token states, concatenated
        attention_head_dim=(2, 4),
        norm_num_groups=32,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + te2,  # 6 time ids + encoder 2's pooled
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**{**tiny_configs()["vae"], "scaling_factor": 0.13025})
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**_clip_config(te1)))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**_clip_config(te2)))
    scheduler = EulerDiscreteScheduler.from_config(
        {k: v for k, v in SDXL_SCHEDULER_CONFIG.items() if k != "_class_name"}
    )
    return StableDiffusionXLPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=load_clip_tokenizer(),
        tokenizer_2=load_clip_tokenizer(),
        unet=unet.eval(),
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def build_tiny_sd3_pipeline(seed: int = TINY_SEED) -> StableDiffusion3Pipeline:
    """A diffusers StableDiffusion3Pipeline with random weights at toy size, CLIP-L/G and no T5 (no T5
    vocabulary can be built offline; diffusers then feeds zeros in T5's place, and so do we)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    te1, te2, joint = TINY_SD3["te1"], TINY_SD3["te2"], TINY_SD3["joint"]
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=joint,
        caption_projection_dim=32,
        pooled_projection_dim=te1 + te2,  # the two pooled projections, concatenated
        out_channels=16,
        pos_embed_max_size=16,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        **{
            **tiny_configs()["vae"],
            "latent_channels": 16,
            "use_quant_conv": False,
            "use_post_quant_conv": False,
            "scaling_factor": 1.5305,
            "shift_factor": 0.0609,
        }
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**_clip_config(te1)))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**_clip_config(te2)))
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(
        {k: v for k, v in SD3_SCHEDULER_CONFIG.items() if k != "_class_name"}
    )
    return StableDiffusion3Pipeline(
        transformer=transformer.eval(),
        scheduler=scheduler,
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=load_clip_tokenizer(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=load_clip_tokenizer(),
        text_encoder_3=None,
        tokenizer_3=None,
    )


TINY_BUILDERS = {"sd": build_tiny_pipeline, "sdxl": build_tiny_sdxl_pipeline, "sd3": build_tiny_sd3_pipeline}


def write_tiny_model(out_dir: str | os.PathLike, seed: int = TINY_SEED, family: str = "sd") -> Path:
    """Write a tiny random pipeline folder of the given family that diffusers' own pipeline class loads
    (``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline`` / ``StableDiffusion3Pipeline``)."""
    if family not in TINY_BUILDERS:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    TINY_BUILDERS[family](seed).save_pretrained(str(out), safe_serialization=True)
    meta = {"kind": "tiny-random", "seed": seed, "family": family}
    (out / "safeaudit.json").write_text(json.dumps(meta) + "\n")
    return out


def _cached_tiny(model: str) -> Path:
    family = TINY_BUILTINS[model]
    name = f"tiny-model-seed{TINY_SEED}" if family == "sd" else f"tiny-{family}-seed{TINY_SEED}"
    cache = Path(os.environ.get("SAFEAUDIT_CACHE", REPO_ROOT / ".cache")) / name
    if not (cache / "model_index.json").exists():
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
        write_tiny_model(tmp, family=family)
        try:
            tmp.rename(cache)
        except OSError:  # another process won the race; its folder is identical
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return cache


def resolve_model(model: str) -> tuple[str, Path | None]:
    """Map a model name to (id recorded in the warehouse, local folder or None for a hub id)."""
    if model in TINY_BUILTINS:
        return model, _cached_tiny(model)
    if model == "builtin:toy":
        if not (TOY_MODEL_DIR / "model_index.json").exists():
            raise ModelLoadError(
                f"model 'builtin:toy': no trained weights at {TOY_MODEL_DIR} (train them with `safeaudit toy train`)"
            )
        return model, TOY_MODEL_DIR
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "unet").is_dir() and not (path / "transformer").is_dir():
            raise ModelLoadError(
                f"model folder {path} is not in diffusers layout (no unet/ or transformer/ subfolder)"
            )
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


def _load_tokenizer(source: str, local: Path | None, subfolder: str, kwargs: dict):
    """A CLIP tokenizer from the model's subfolder, or the project's BPE files where a local folder has none."""
    from transformers import CLIPTokenizer

    if local is not None and not (local / subfolder).is_dir():
        return load_clip_tokenizer()
    return CLIPTokenizer.from_pretrained(source, subfolder=subfolder, model_max_length=77, **kwargs)


def _has_part(local: Path | None, index: dict, name: str) -> bool:
    """Whether an optional part (SD3's T5) is in the model: a null model_index entry means absent."""
    entry = index.get(name)
    if not entry or entry[0] is None:
        return False
    return local is None or (local / name).is_dir()


def _read_index(source: str, local: Path | None, kwargs: dict) -> dict:
    if local is not None:
        index = local / "model_index.json"
        return (
            json.loads(index.read_text()) if index.is_file() else {"_class_name": "StableDiffusionPipeline"}
        )
    from diffusers import DiffusionPipeline

    return dict(DiffusionPipeline.load_config(source, **kwargs))


def _load_parts(
    family: str, source: str, local: Path | None, index: dict, torch_dtype: Any, kwargs: dict
) -> dict:
    """The family's parts, by the classes its pipeline uses."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    def part(cls: type, subfolder: str) -> Any:
        return cls.from_pretrained(source, subfolder=subfolder, torch_dtype=torch_dtype, **kwargs)

    parts: dict[str, Any] = {
        "tokenizer": _load_tokenizer(source, local, "tokenizer", kwargs),
        "vae": part(AutoencoderKL, "vae"),
        "scheduler_config": dict(DDIMScheduler.load_config(source, subfolder="scheduler", **kwargs)),
    }
    if family == "sd":
        parts["text_encoder"] = part(CLIPTextModel, "text_encoder")
        parts["unet"] = part(UNet2DConditionModel, "unet")
        return parts
    parts["tokenizer_2"] = _load_tokenizer(source, local, "tokenizer_2", kwargs)
    parts["text_encoder_2"] = part(CLIPTextModelWithProjection, "text_encoder_2")
    if family == "sdxl":
        parts["text_encoder"] = part(CLIPTextModel, "text_encoder")
        parts["unet"] = part(UNet2DConditionModel, "unet")
        parts["pipeline_config"] = {
            "force_zeros_for_empty_prompt": bool(index.get("force_zeros_for_empty_prompt", True))
        }
        return parts
    from diffusers import SD3Transformer2DModel

    parts["text_encoder"] = part(CLIPTextModelWithProjection, "text_encoder")
    parts["unet"] = part(SD3Transformer2DModel, "transformer")
    if _has_part(local, index, "text_encoder_3"):
        from transformers import AutoTokenizer, T5EncoderModel

        parts["text_encoder_3"] = part(T5EncoderModel, "text_encoder_3")
        parts["tokenizer_3"] = AutoTokenizer.from_pretrained(source, subfolder="tokenizer_3", **kwargs)
    return parts


def load_components(
    model: str, revision: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> Components:
    """Load the parts of an SD, SDXL or SD3 model from a local folder or a hub id (cache first)."""
    model_id, local = resolve_model(model)
    source = str(local) if local is not None else model
    torch_dtype = _dtype(dtype)
    kwargs: dict[str, Any] = {} if local is not None else {"revision": revision}
    try:
        import transformers.utils.logging as tlog

        tlog.set_verbosity_error()
        index = _read_index(source, local, kwargs)
        family = family_from_index(index)
        parts = _load_parts(family, source, local, index, torch_dtype, kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        if local is not None:
            raise ModelLoadError(
                f"model folder {local} could not be loaded: {type(exc).__name__}: {exc}".split("\n")[0]
            ) from None
        raise ModelLoadError(
            f"model {model!r} (revision {revision or 'main'}) is not in the local Hugging Face cache and the hub "
            f"is unreachable; pass a local folder in diffusers layout (model: /path/to/model) or use builtin:tiny"
        ) from None
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "unet", "vae"):
        if parts.get(name) is not None:
            parts[name].to(device).eval().requires_grad_(False)
    return Components(
        **parts,
        model_id=model_id,
        revision=revision,
        dtype=dtype,
        device=device,
        family=family,
    )
