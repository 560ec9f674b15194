"""What each safety method costs per image, against its floor, diffusers' SLD and a one-prompt SAFREE loop.

    .venv/bin/python bench/bench_methods.py [--model builtin:tiny] [--batch 4] [--steps 20] [--repeats 5]
    .venv/bin/python bench/bench_methods.py --full-size --device cuda --dtype float16 --size 512 --steps 50
    .venv/bin/python bench/bench_methods.py --quick            # seconds: proves every path runs
    .venv/bin/python bench/bench_methods.py --family sdxl --full-size --size 256 --steps 2   # SDXL-base arch
    .venv/bin/python bench/bench_methods.py --family sd3 --full-size --size 256 --steps 2    # SD3-medium arch

Three parts (``--parts``), all on the same components, batch, steps and size:

``methods``  every registered method at every level against ``baseline``. Its *floor* is the ratio of UNet
             rows it executes to the baseline's (counted by wrapping ``unet.forward`` during an untimed pass,
             removed again after): SLD 3 vs 2, SAFREE 2 (+ text-encoder passes; 3 at ``official``, whose LRA
             row is discarded), Safe Denoiser 2 + a kernel, dual_latent 3 in its dual phase, negative_prompt 2.
             The same pass meters seconds in the UNet, the text encoder and the VAE decoder, so a method above
             its floor shows whether the excess is model time or its own arithmetic; ``--profile`` adds a
             cProfile of each such method.
``diffusers`` our ``sld`` against diffusers' ``StableDiffusionPipelineSafe`` at the same preset. Both sides
             include prompt encoding and VAE decode (the diffusers pipeline always decodes; ``output_type="np"``
             only skips PIL), and start from the same per-request noise, so their images are compared too.
``safree``   SAFREE on N prompts in one call against one call per prompt (the released code's batch size 1),
             with the keyword cache warm (our own loop) and emptied before every prompt ("cold": the released
             code recomputes the keyword rows and P_C for every prompt).

All timings are round-robin (``bench/common.py``): ratios are medians over rounds of per-round ratios.

``--full-size`` builds the Stable Diffusion 1.5 architecture (UNet2DConditionModel 860 M, AutoencoderKL 84 M,
CLIP ViT-L/14 text encoder 123 M) from its published configs with *random* weights: nothing is downloaded.
Random weights give the real cost per call (the images are noise). On CPU use a small ``--size`` (e.g. 128)
and few steps as a UNet-dominated proxy; on a GPU use ``--device cuda --dtype float16 --size 512 --steps 50``.

``--family sdxl|sd3`` runs the ``methods`` part on that family (the methods its FAMILIES declare, the
family's default scheduler): the tiny built-in by default, or with ``--full-size`` the SDXL-base architecture
(UNet 2.57 B, CLIP-L 123 M + OpenCLIP-bigG 695 M, VAE 84 M) or SD3-medium's (MMDiT 2.03 B, CLIP-L + CLIP-G
with projections, 16-channel VAE; **T5 omitted**: its 4.7 B parameters do not fit 24 GiB in float32, and the
prompt rows then carry 256 zero T5 tokens, as diffusers runs a T5-less SD3). The ``text`` meter sums both
CLIP encoders.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    interleaved,
    machine_info,
    markdown_table,
    median,
    metered,
    profile_top,
    quiet_libraries,
    set_threads,
    write_json,
)

# Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5) component configs, as published in its model folder.
SD15_UNET: dict[str, Any] = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
)
SD15_VAE: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
SD15_TEXT: dict[str, Any] = dict(  # openai/clip-vit-large-patch14's text tower, as SD 1.5 ships it
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    projection_dim=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    bos_token_id=0,  # SD 1.5's config keeps these legacy ids; pooling then takes the argmax id (EOS 49407)
    eos_token_id=2,
    pad_token_id=1,
)

# SDXL base (stabilityai/stable-diffusion-xl-base-1.0) component configs, as published in its model folder.
SDXL_UNET: dict[str, Any] = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # 6 time ids × 256 + bigG's 1280-d pooled projection
    norm_num_groups=32,
    flip_sin_to_cos=True,
    freq_shift=0,
    act_fn="silu",
)
SDXL_VAE: dict[str, Any] = {**SD15_VAE, "sample_size": 1024, "scaling_factor": 0.13025}
SDXL_TEXT_2: dict[str, Any] = dict(  # OpenCLIP ViT-bigG/14 text tower with its projection
    vocab_size=49408,
    hidden_size=1280,
    intermediate_size=5120,
    projection_dim=1280,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)
# SD3 medium (stabilityai/stable-diffusion-3-medium-diffusers) component configs.
SD3_TRANSFORMER: dict[str, Any] = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    out_channels=16,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    pos_embed_max_size=192,
)
SD3_VAE: dict[str, Any] = {
    **SD15_VAE,
    "latent_channels": 16,
    "sample_size": 1024,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "scaling_factor": 1.5305,
    "shift_factor": 0.0609,
}

PROMPTS = [  # the toy world's words, so every concept pack field (red, crimson, ...) has triggers to find
    "a red circle",
    "a big crimson square on white",
    "two scarlet triangles",
    "a blue star",
    "a small green circle next to a red square",
    "a ruby star in the middle",
    "an orange triangle",
    "three yellow circles",
    "a blood red square",
    "a purple star and a red circle",
    "a cherry red triangle on a blue background",
    "a pink square",
    "a green star",
    "a large red star",
    "a blue circle above a yellow square",
    "one scarlet circle",
]


# -- components ------------------------------------------------------------------------------------------------
def full_size_components(device: str = "cpu", dtype: str = "float32", seed: int = 0):
    """SD 1.5's UNet, VAE and text encoder with random weights (no download), the real CLIP tokenizer.

    ``device="meta"`` builds the modules without allocating weights (to check the configs cheaply)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from models.components import SD_SCHEDULER_CONFIG, Components, _dtype, load_clip_tokenizer

    torch_dtype = _dtype(dtype)
    parts = []
    with torch.device(device):  # build in place: a GPU initialises 1 B parameters in seconds, a CPU in ~20 s
        for k, build in enumerate(
            (
                lambda: UNet2DConditionModel(**SD15_UNET),
                lambda: AutoencoderKL(**SD15_VAE),
                lambda: CLIPTextModel(CLIPTextConfig(**SD15_TEXT)),
            )
        ):
            torch.manual_seed(seed + k)
            parts.append(build().to(dtype=torch_dtype).eval().requires_grad_(False))
    unet, vae, text_encoder = parts
    return Components(
        tokenizer=load_clip_tokenizer(),
        text_encoder=text_encoder,
        unet=unet,
        vae=vae,
        scheduler_config={k: v for k, v in SD_SCHEDULER_CONFIG.items() if k != "_class_name"},
        model_id="random:sd-1.5-architecture",
        dtype=dtype,
        device=device,
    )


def full_size_family_components(family: str, device: str = "cpu", dtype: str = "float32", seed: int = 0):
    """SDXL-base's or SD3-medium's parts with random weights (no download), the real CLIP tokenizer; T5 omitted."""
    import torch
    from diffusers import AutoencoderKL, SD3Transformer2DModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from models.components import (
        SD3_SCHEDULER_CONFIG,
        SDXL_SCHEDULER_CONFIG,
        Components,
        _dtype,
        load_clip_tokenizer,
    )

    torch_dtype = _dtype(dtype)
    if family == "sdxl":
        builds = (
            lambda: UNet2DConditionModel(**SDXL_UNET),
            lambda: AutoencoderKL(**SDXL_VAE),
            lambda: CLIPTextModel(CLIPTextConfig(**SD15_TEXT)),
            lambda: CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2)),
        )
        scheduler = SDXL_SCHEDULER_CONFIG
    else:
        builds = (
            lambda: SD3Transformer2DModel(**SD3_TRANSFORMER),
            lambda: AutoencoderKL(**SD3_VAE),
            lambda: CLIPTextModelWithProjection(CLIPTextConfig(**SD15_TEXT)),
            lambda: CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2)),
        )
        scheduler = SD3_SCHEDULER_CONFIG
    parts = []
    with torch.device(device):
        for k, build in enumerate(builds):
            torch.manual_seed(seed + k)
            parts.append(build().to(dtype=torch_dtype).eval().requires_grad_(False))
    denoiser, vae, text_encoder, text_encoder_2 = parts
    return Components(
        tokenizer=load_clip_tokenizer(),
        text_encoder=text_encoder,
        unet=denoiser,
        vae=vae,
        scheduler_config=dict(scheduler),
        model_id=f"random:{'sdxl-base' if family == 'sdxl' else 'sd3-medium'}-architecture",
        dtype=dtype,
        device=device,
        family=family,
        tokenizer_2=load_clip_tokenizer(),
        text_encoder_2=text_encoder_2,
        pipeline_config={"force_zeros_for_empty_prompt": True} if family == "sdxl" else {},
    )


def load(args) -> Any:
    if args.full_size:
        if args.family == "sd":
            return full_size_components(args.device, args.dtype)
        return full_size_family_components(args.family, args.device, args.dtype)
    from models.components import load_components

    return load_components(args.model, dtype=args.dtype, device=args.device)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def sync_fn(device: str):
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.synchronize
    return None


def parts_of(components) -> dict[str, tuple[Any, str]]:
    out = {
        "unet": (components.unet, "forward"),
        "text": (components.text_encoder, "forward"),
        "vae": (components.vae, "decode"),
    }
    if getattr(components, "text_encoder_2", None) is not None:  # sdxl, sd3: folded into "text"
        out["text2"] = (components.text_encoder_2, "forward")
    return out


def read_meters(meters) -> dict[str, float]:
    """rows and seconds per part; a second text encoder's are added to the first's ("text")."""
    out = {f"{p}_{k}": getattr(m, k) for p, m in meters.items() for k in ("rows", "seconds")}
    for k in ("rows", "seconds"):
        if f"text2_{k}" in out:
            out[f"text_{k}"] += out.pop(f"text2_{k}")
    return out


def with_parts(components, args, fn):
    """``fn`` wrapped so that, on a CPU, each call returns the seconds spent in the UNet, the text encoder and
    the VAE decoder (CPU clock, as the timings); on a GPU the call runs bare (a meter would need syncs)."""
    if primary_clock(args) == "wall":
        return fn

    def call() -> dict[str, float]:
        with metered(parts_of(components), clock=time.process_time) as meters:
            fn()
        return read_meters(meters)

    return call


def split_per_image(timings, key: str, n_images: int) -> dict[str, float | None]:
    """Median ms per image in the UNet, text encoder, VAE decoder and everything else (CPU runs only)."""
    results = timings.results[key]
    if not results or results[0] is None:
        return {"unet_ms": None, "text_ms": None, "vae_ms": None, "other_ms": None}
    out = {
        f"{p}_ms": 1000 * median(r[f"{p}_seconds"] for r in results) / n_images
        for p in ("unet", "text", "vae")
    }
    other = [
        t - r["unet_seconds"] - r["text_seconds"] - r["vae_seconds"]
        for t, r in zip(timings.cpu[key], results, strict=True)
    ]
    out["other_ms"] = 1000 * median(other) / n_images
    return out


# -- part 1: every method and level against the baseline ------------------------------------------------------
def variant_list(methods: list[str], levels: list[str] | None, family: str = "sd") -> list[tuple[str, str]]:
    from models.registry import METHODS, method_class

    out = [("baseline", "off")]
    for name in methods:
        if name == "baseline" or name not in METHODS:
            continue
        if family not in method_class(name).FAMILIES:  # an unsupported pair is not a cost point
            continue
        for level in method_class(name).LEVELS:
            if levels is None or level in levels:
                out.append((name, level))
    return out


def primary_clock(args) -> str:
    """CPU time on a CPU (steady under the shared machine's load, torch on one thread); wall time on a GPU."""
    return "wall" if str(args.device).startswith("cuda") else "cpu"


def bench_overrides(method: str, components) -> dict[str, Any] | None:
    """A versioned negation set serves the model that encoded it (the toy's serves builtin:toy); on any other
    model the Safe Denoiser takes the toy set's images as a plain folder, encoded with this model's VAE."""
    if method != "safe_denoiser" or components.model_id == "builtin:toy":
        return None
    images = sorted((Path(__file__).resolve().parent.parent / "models" / "toy" / "negation").glob("*/images"))
    return {"negation_set": str(images[-1])} if images else None


def bench_method_levels(components, args, pack) -> dict[str, Any]:
    from models.families import default_scheduler
    from models.registry import build_method
    from models.sampler import Request, SamplerSettings, sample

    family = components.family
    scheduler = "ddim" if family == "sd" else default_scheduler(family)
    settings = SamplerSettings(scheduler=scheduler, steps=args.steps, height=args.size, width=args.size)
    requests = [Request(PROMPTS[i % len(PROMPTS)], 1000 + i) for i in range(args.batch)]
    variants = variant_list(args.methods, args.levels, family)
    methods = {
        f"{m}:{lvl}": build_method(m, lvl, overrides=bench_overrides(m, components), concept=pack)
        for m, lvl in variants
    }
    gpu = sync_fn(args.device)
    clock = primary_clock(args)

    def metered_call(method, sync=None) -> dict[str, float]:
        """One sampling call with the UNet / text encoder / VAE decoder wrapped; their rows and seconds."""
        tick = time.perf_counter if clock == "wall" else time.process_time
        with metered(parts_of(components), sync=sync, clock=tick) as meters:
            sample(components, requests, method, settings)
        return read_meters(meters)

    # On a CPU the part meters ride along in the timed rounds (a Python wrapper per model call, no sync). On a
    # GPU they would need a sync per call, so the timed rounds run bare and separate rounds meter the parts.
    meter_in_timing = gpu is None
    calls = {
        key: (lambda m=m: metered_call(m))
        if meter_in_timing
        else (lambda m=m: sample(components, requests, m, settings))
        for key, m in methods.items()
    }
    timings = interleaved(calls, repeats=args.repeats, warmup=1, sync=gpu)
    if meter_in_timing:
        parts, series = timings.results, timings.clock(clock)
    else:
        metered_rounds = interleaved(
            {key: (lambda m=m: metered_call(m, sync=gpu)) for key, m in methods.items()}, repeats=1, warmup=0
        )
        parts, series = metered_rounds.results, metered_rounds.rounds

    def part(key: str, r: int, name: str) -> float:
        return parts[key][r][name]

    def total(key: str, r: int) -> float:
        return series[key][r]

    def loop_time(key: str, r: int) -> float:
        """Time minus prompt encoding and VAE decode: the denoising loop the UNet floor is about."""
        return total(key, r) - part(key, r, "text_seconds") - part(key, r, "vae_seconds")

    def unet_time(key: str, r: int) -> float:
        return part(key, r, "unet_seconds")

    base = "baseline:off"
    base_rows = part(base, 0, "unet_rows")
    n_parts = len(parts[base])
    rows = []
    for (name, level), key in zip(variants, methods, strict=True):
        floor = part(key, 0, "unet_rows") / base_rows
        ratio = timings.ratio(key, base, of=timings.of(clock))
        lo, hi = timings.ratio_range(key, base, of=timings.of(clock))

        def ratios_of(f, key=key) -> float:
            return median(f(key, r) / f(base, r) for r in range(n_parts))

        extra_text = median(
            (part(key, r, "text_seconds") - part(base, r, "text_seconds")) / total(base, r)
            for r in range(n_parts)
        )
        extra_other = median(
            (loop_time(key, r) - unet_time(key, r) - loop_time(base, r) + unet_time(base, r)) / total(base, r)
            for r in range(n_parts)
        )
        rows.append(
            {
                "method": name,
                "level": level,
                "ms_per_image": 1000 * timings.median(key, clock) / args.batch,
                "unet_rows_per_image_step": part(key, 0, "unet_rows") / (args.batch * args.steps),
                "text_rows": part(key, 0, "text_rows"),
                "floor": floor,
                "ratio": ratio,
                "ratio_min": lo,
                "ratio_max": hi,
                "wall_ratio": timings.ratio(key, base),
                "ratio_over_floor": ratio / floor,
                "loop_ratio": ratios_of(loop_time),
                "unet_s_ratio": ratios_of(unet_time),
                "unet_share": median(unet_time(key, r) / total(key, r) for r in range(n_parts)),
                "extra_text_pct": 100 * extra_text,
                "extra_other_pct": 100 * extra_other,
                "goal_met": ratio <= 1.05 * floor,
            }
        )
    profiles = {}
    if args.profile:
        for row, key in zip(rows, methods, strict=True):
            if row["ratio"] > 1.05 * row["floor"] or key in args.profile_also:
                method = methods[key]
                profiles[key] = profile_top(
                    lambda m=method: sample(components, requests, m, settings), n=args.profile_n
                )
    return {
        "rows": rows,
        "clock": clock,
        "baseline_ms_per_image": 1000 * timings.median(base, clock) / args.batch,
        "baseline_wall_ms_per_image": 1000 * timings.median(base) / args.batch,
        "profiles": profiles,
        "family": family,
        "scheduler": scheduler,
    }


# -- part 2: our SLD against diffusers' StableDiffusionPipelineSafe -------------------------------------------
def diffusers_safe_pipeline(components):
    from diffusers import DDIMScheduler
    from diffusers.pipelines.deprecated.stable_diffusion_safe import StableDiffusionPipelineSafe

    from models.sld import DEFAULT_CONCEPT

    pipe = StableDiffusionPipelineSafe(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        scheduler=DDIMScheduler.from_config(components.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.safety_concept = DEFAULT_CONCEPT  # the same c_S text on both sides (our SLD without a concept pack)
    return pipe


def bench_vs_diffusers(components, args) -> dict[str, Any]:
    import numpy as np
    import torch

    from models.registry import build_method
    from models.sampler import Request, SamplerSettings, sample

    pipe = diffusers_safe_pipeline(components)
    settings = SamplerSettings(scheduler="ddim", steps=args.steps, height=args.size, width=args.size)
    requests = [Request(PROMPTS[i % len(PROMPTS)], 2000 + i) for i in range(args.batch)]
    sync = sync_fn(args.device)
    levels = [
        lvl
        for lvl in ("weak", "medium", "strong", "max")
        if args.sld_levels is None or lvl in args.sld_levels
    ]

    def ours(method):
        return sample(components, requests, method, settings).images

    def theirs(cfg):
        out = pipe(
            [r.prompt for r in requests],
            height=args.size,
            width=args.size,
            num_inference_steps=args.steps,
            guidance_scale=settings.guidance,
            generator=[torch.Generator("cpu").manual_seed(r.seed) for r in requests],
            output_type="np",
            **{k: v for k, v in cfg.items() if k.startswith("sld_")},
        )
        return out.images

    calls, same = {}, {}
    for level in levels:
        method = build_method("sld", level)  # no concept pack: DEFAULT_CONCEPT, diffusers' own text
        cfg = method.config.as_dict()
        calls[f"ours:{level}"] = with_parts(components, args, lambda m=method: ours(m))
        calls[f"diffusers:{level}"] = with_parts(components, args, lambda c=cfg: theirs(c))
        a = ours(method).astype(np.int16)
        b = (np.asarray(theirs(cfg)) * 255).round().astype(np.int16)
        same[level] = int(np.abs(a - b).max())
    timings = interleaved(calls, repeats=args.repeats, warmup=1, sync=sync)
    clock = primary_clock(args)
    of = timings.of(clock)
    rows = []
    for level in levels:
        a, b = f"ours:{level}", f"diffusers:{level}"
        lo, hi = timings.ratio_range(a, b, of=of)
        ratio = timings.ratio(a, b, of=of)
        ours_split, their_split = (
            split_per_image(timings, a, args.batch),
            split_per_image(timings, b, args.batch),
        )
        rows.append(
            {
                "level": level,
                "ours_ms_per_image": 1000 * timings.median(a, clock) / args.batch,
                "diffusers_ms_per_image": 1000 * timings.median(b, clock) / args.batch,
                "ratio": ratio,
                "ratio_min": lo,
                "ratio_max": hi,
                "wall_ratio": timings.ratio(a, b),
                # outside the three models: the loop, guidance arithmetic, scheduler, tokenizer, Python
                "ours_other_ms": ours_split["other_ms"],
                "diffusers_other_ms": their_split["other_ms"],
                "unet_rows_same": None
                if timings.results[a][0] is None
                else timings.results[a][0]["unet_rows"] == timings.results[b][0]["unet_rows"],
                "max_pixel_diff": same[level],
                "goal_met": ratio <= 1.0,
            }
        )
    profiles = {}
    if args.profile and levels:  # where each side's time outside the models goes, one level
        method = build_method("sld", levels[0])
        cfg = method.config.as_dict()
        profiles[f"ours:{levels[0]}"] = profile_top(lambda: ours(method), n=args.profile_n)
        profiles[f"diffusers:{levels[0]}"] = profile_top(lambda: theirs(cfg), n=args.profile_n)
    return {
        "rows": rows,
        "clock": clock,
        "decode": "included on both sides",
        "scheduler": "ddim",
        "profiles": profiles,
    }


# -- part 3: SAFREE batched against one prompt at a time ------------------------------------------------------
def bench_safree_batching(components, args, pack) -> dict[str, Any]:
    import numpy as np

    from models.registry import build_method
    from models.safree import clear_keyword_cache
    from models.sampler import Request, SamplerSettings, sample

    settings = SamplerSettings(steps=args.steps, height=args.size, width=args.size)
    requests = [Request(PROMPTS[i % len(PROMPTS)], 3000 + i) for i in range(args.safree_n)]
    sync = sync_fn(args.device)
    rows = []
    calls = {}

    def cold(method, request):
        # the released code recomputes the keyword rows and P_C for every prompt: empty our cache first
        clear_keyword_cache()
        return sample(components, [request], method, settings).images

    for level in args.safree_levels:
        method = build_method("safree", level, concept=pack)
        calls[f"batched:{level}"] = lambda m=method: sample(components, requests, m, settings).images
        calls[f"loop:{level}"] = lambda m=method: np.concatenate(
            [sample(components, [r], m, settings).images for r in requests]
        )
        calls[f"loop_cold:{level}"] = lambda m=method: np.concatenate([cold(m, r) for r in requests])
    outputs = {k: fn() for k, fn in calls.items()}
    calls = {k: with_parts(components, args, fn) for k, fn in calls.items()}
    timings = interleaved(calls, repeats=args.repeats, warmup=0, sync=sync)
    clock = primary_clock(args)
    of = timings.of(clock)
    splits = []
    for level in args.safree_levels:
        a, b, c = f"loop:{level}", f"batched:{level}", f"loop_cold:{level}"
        diff = np.abs(outputs[b].astype(np.int16) - outputs[a].astype(np.int16))
        lo, hi = timings.ratio_range(a, b, of=of)
        speedup = timings.ratio(a, b, of=of)
        cold_lo, cold_hi = timings.ratio_range(c, b, of=of)
        for variant in (b, a, c):
            split = split_per_image(timings, variant, len(requests))
            splits.append({"variant": variant, **split})
        rows.append(
            {
                "level": level,
                "n_prompts": len(requests),
                "batched_ms_per_image": 1000 * timings.median(b, clock) / len(requests),
                "loop_ms_per_image": 1000 * timings.median(a, clock) / len(requests),
                "speedup": speedup,
                "speedup_min": lo,
                "speedup_max": hi,
                "wall_speedup": timings.ratio(a, b),
                # one call per prompt with the keyword cache emptied before each (the released code's work)
                "loop_cold_ms_per_image": 1000 * timings.median(c, clock) / len(requests),
                "speedup_vs_cold_loop": timings.ratio(c, b, of=of),
                "cold_speedup_min": cold_lo,
                "cold_speedup_max": cold_hi,
                "max_pixel_diff": int(diff.max()),
                "cold_loop_same_images": bool(np.array_equal(outputs[a], outputs[c])),
                "goal_met": speedup >= 5.0,
            }
        )
    return {"rows": rows, "clock": clock, "split": splits}


# -- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default=None, help="builtin:tiny[-sdxl|-sd3] | builtin:toy | a diffusers folder"
    )
    ap.add_argument("--family", default="sd", choices=("sd", "sdxl", "sd3"), help="model family")
    ap.add_argument(
        "--full-size",
        action="store_true",
        help="SD 1.5 / SDXL-base / SD3-medium architecture (per --family), random weights (no download)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--size", type=int, default=64, help="image height = width in pixels")
    ap.add_argument("--batch", type=int, default=4, help="requests per sampling call")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (after one untimed warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    ap.add_argument(
        "--parts",
        default=None,
        help="comma list: methods,diffusers,safree (default: all three on sd, methods on sdxl/sd3)",
    )
    ap.add_argument("--methods", default="sld,safree,safe_denoiser,dual_latent,negative_prompt")
    ap.add_argument("--levels", default=None, help="comma list of levels to keep (default: every level)")
    ap.add_argument("--sld-levels", default=None, help="comma list for the diffusers comparison")
    ap.add_argument("--safree-n", type=int, default=16, help="prompts in the SAFREE batching comparison")
    ap.add_argument("--safree-levels", default="strong")
    ap.add_argument("--concept", default="toy", help="concept pack for the methods")
    ap.add_argument("--profile", action="store_true", help="cProfile every method point above 1.05 x floor")
    ap.add_argument("--profile-also", default="", help="comma list of method:level to profile anyway")
    ap.add_argument("--profile-n", type=int, default=12)
    ap.add_argument(
        "--quick", action="store_true", help="tiny smoke run: batch 1, 2 steps, 1 round, 2 levels"
    )
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.repeats, args.safree_n = 1, 2, 1, 2
        args.levels = args.levels or "off,strong,official"
        args.sld_levels = args.sld_levels or "medium"
    if args.parts is None:
        args.parts = "methods,diffusers,safree" if args.family == "sd" else "methods"
    if args.model is None:
        args.model = "builtin:tiny" if args.family == "sd" else f"builtin:tiny-{args.family}"
    args.parts = [p for p in args.parts.split(",") if p]
    args.methods = [m for m in args.methods.split(",") if m]
    args.levels = args.levels.split(",") if args.levels else None
    args.sld_levels = args.sld_levels.split(",") if args.sld_levels else None
    args.safree_levels = [lvl for lvl in args.safree_levels.split(",") if lvl]
    args.profile_also = [p for p in args.profile_also.split(",") if p]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet_libraries()
    if args.device == "cpu":
        set_threads(args.threads)
    from models.concepts import load_pack

    components = load(args)
    pack = load_pack(args.concept)
    if components.family != args.family:
        raise SystemExit(f"--family {args.family} but model {args.model} is {components.family}")
    arch = {"sd": "SD 1.5", "sdxl": "SDXL-base", "sd3": "SD3-medium (no T5)"}[args.family]
    setup = {
        "model": f"random {arch} architecture" if args.full_size else args.model,
        "family": args.family,
        "device": args.device,
        "dtype": args.dtype,
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "unet_params": n_params(components.unet),
        "text_params": n_params(components.text_encoder),
        "vae_params": n_params(components.vae),
    }
    results: dict[str, Any] = {"machine": machine_info(), "setup": setup}
    print(f"# bench_methods  {results['machine']}\n# {setup}\n")
    if "methods" in args.parts:
        res = results["methods"] = bench_method_levels(components, args, pack)
        print(
            f"## method cost vs baseline ({res['clock']} clock; baseline {res['baseline_ms_per_image']:.1f} ms/image)\n"
        )
        print(markdown_table(res["rows"]) + "\n")
        for key, top in res["profiles"].items():
            print(f"### cProfile {key} (own time)\n\n{markdown_table(top)}\n")
    if "diffusers" in args.parts:
        res = results["diffusers"] = bench_vs_diffusers(components, args)
        print("## sld vs diffusers StableDiffusionPipelineSafe (decode included on both sides)\n")
        print(markdown_table(res["rows"]) + "\n")
        for key, top in res["profiles"].items():
            print(f"### cProfile {key} (own time)\n\n{markdown_table(top)}\n")
    if "safree" in args.parts:
        res = results["safree"] = bench_safree_batching(components, args, pack)
        print(f"## safree: {args.safree_n} prompts in one call vs one call per prompt\n")
        print(markdown_table(res["rows"]) + "\n")
        print("ms per image by part:\n\n" + markdown_table(res["split"]) + "\n")
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
