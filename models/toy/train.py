"""Train the toy-world model: a tiny Stable-Diffusion-architecture text-to-image model on procedural renders.

Stages (each resumable; a finished stage is skipped on resume):
  1. VAE   - diffusers AutoencoderKL (8x down-sampling: 64 px images -> 4 x 8 x 8 latents), MSE + tiny KL.
  2. text  - transformers CLIPTextModel (hidden 64) trained text-only with an auxiliary colour/shape head on
             its pooled output and on its mean token state, so every colour gets its own embedding.
  3. cache - latents (posterior mean and std) of the training renders, text states of every caption.
  4. UNet  - diffusers UNet2DConditionModel, DDPM epsilon objective on SD 1.x's scaled-linear schedule,
             min-SNR-5 weighting, 10% caption dropout to "" (for classifier-free guidance), text frozen.
  5. save  - StableDiffusionPipeline folder in float16 (+ safeaudit.json with the training record).

    python -m models.toy.train --out .cache/toy-train/run0            # train (resumes if interrupted)
    python -m models.toy.train --out DIR --export models/toy/weights  # copy the saved pipeline
    safeaudit toy evaluate models/toy/weights --card                   # re-measure the model card numbers

Evaluation and the model card are measurements of the model by the platform's toy scorers: they live in
``pipelines/toy_eval.py`` and ``pipelines/model_card.py`` (models/ imports nothing from pipelines).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.toy.render import COLOUR_NAMES, SHAPES, all_captions, sample_dataset

TEXT_HIDDEN = 64


@dataclass
class TrainConfig:
    seed: int = 0
    n_images: int = 16000
    vae_steps: int = 560
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6
    text_steps: int = 100
    text_batch: int = 128
    text_lr: float = 2e-3
    unet_steps: int = 3000
    unet_batch: int = 64
    unet_lr: float = 1e-3
    unet_warmup: int = 100
    caption_dropout: float = 0.1
    snr_gamma: float = 5.0
    checkpoint_every_s: float = 180.0
    gap_n: int = 512  # held-out draws for the right-vs-empty-caption loss gap
    threads: int = 1
    vae_channels: tuple = (16, 32, 32, 32)
    unet_channels: tuple = (32, 64)
    unet_layers: int = 2
    text_layers: int = 2
    extra: dict = field(default_factory=dict)


def model_configs(cfg: TrainConfig) -> dict[str, dict]:
    return {
        "text_encoder": dict(
            vocab_size=49408,
            hidden_size=TEXT_HIDDEN,
            intermediate_size=4 * TEXT_HIDDEN,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=TEXT_HIDDEN,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        ),
        "vae": dict(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=tuple(cfg.vae_channels),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=16,
            sample_size=64,
        ),
        "unet": dict(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=cfg.unet_layers,
            block_out_channels=tuple(cfg.unet_channels),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TEXT_HIDDEN,
            attention_head_dim=4,
            norm_num_groups=32,
        ),
    }


def _tqdm(iterable, progress: bool, **kw):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def _to_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _save_ckpt(path: Path, obj: dict) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _log(out: Path, record: dict) -> None:
    with open(out / "log.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _step_generator(seed: int, stage: int, step: int):
    import torch

    return torch.Generator().manual_seed(seed * 1_000_003 + stage * 100_019 + step)


def _lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


# ----------------------------------------------------------------------------------------------- VAE
def train_vae(out: Path, cfg: TrainConfig, images: np.ndarray, progress: bool) -> Any:
    import torch
    from diffusers import AutoencoderKL

    final = out / "vae_final.pt"
    ckpt = out / "vae_ckpt.pt"
    torch.manual_seed(cfg.seed + 1)
    vae = AutoencoderKL(**model_configs(cfg)["vae"])
    if final.exists():
        vae.load_state_dict(torch.load(final, weights_only=False)["model"])
        return vae
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
    vae.train()
    data = _to_tensor(images)
    last_ck = time.time()
    bar = _tqdm(range(start, cfg.vae_steps), progress, desc="vae", initial=start, total=cfg.vae_steps)
    ema = None
    for step in bar:
        g = _step_generator(cfg.seed, 1, step)
        idx = torch.randint(0, len(data), (cfg.vae_batch,), generator=g)
        x = data[idx]
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg.vae_steps, cfg.vae_lr, 50)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        mse = torch.nn.functional.mse_loss(rec, x)
        l1 = (rec - x).abs().mean()
        kl = post.kl().mean() / x[0].numel()
        loss = mse + 0.1 * l1 + cfg.vae_kl * kl * x[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        ema = mse.item() if ema is None else 0.98 * ema + 0.02 * mse.item()
        if progress:
            bar.set_postfix(mse=f"{ema:.4f}")
        if step % 50 == 0 or step == cfg.vae_steps - 1:
            _log(out, {"stage": "vae", "step": step, "mse": mse.item(), "kl": kl.item(), "t": time.time()})
        if time.time() - last_ck > cfg.checkpoint_every_s:
            _save_ckpt(ckpt, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1})
            last_ck = time.time()
    vae.eval()
    _save_ckpt(final, {"model": vae.state_dict()})
    ckpt.unlink(missing_ok=True)
    return vae


# ---------------------------------------------------------------------------------------------- text
def _tokenize(tokenizer, texts: list[str]):
    return tokenizer(
        texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids


def _caption_labels(text: str) -> tuple[int, int]:
    words = text.split()
    colour = next((COLOUR_NAMES.index(w) for w in words if w in COLOUR_NAMES), len(COLOUR_NAMES))
    shape = next((SHAPES.index(w) for w in words if w in SHAPES), len(SHAPES))
    return colour, shape


def train_text(out: Path, cfg: TrainConfig, tokenizer, progress: bool) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    final = out / "text_final.pt"
    torch.manual_seed(cfg.seed + 2)
    te = CLIPTextModel(CLIPTextConfig(**model_configs(cfg)["text_encoder"]))
    if final.exists():
        te.load_state_dict(torch.load(final, weights_only=False)["model"])
        return te.eval()
    caps = all_captions()
    ids = _tokenize(tokenizer, caps)
    labels = torch.tensor([_caption_labels(c) for c in caps])
    n_col, n_shape = len(COLOUR_NAMES) + 1, len(SHAPES) + 1  # +1: "none" (the empty prompt)
    heads = torch.nn.ModuleDict(
        {
            "pool": torch.nn.Linear(TEXT_HIDDEN, n_col + n_shape),
            "mean": torch.nn.Linear(TEXT_HIDDEN, n_col + n_shape),
        }
    )
    opt = torch.optim.AdamW(list(te.parameters()) + list(heads.parameters()), lr=cfg.text_lr)
    te.train()
    bar = _tqdm(range(cfg.text_steps), progress, desc="text")
    for step in bar:
        g = _step_generator(cfg.seed, 2, step)
        idx = torch.randint(0, len(caps), (cfg.text_batch,), generator=g)
        o = te(ids[idx])
        states = o.last_hidden_state
        loss = 0.0
        accs = []
        for name, feat in (("pool", o.pooler_output), ("mean", states.mean(1))):
            logits = heads[name](feat)
            lc = torch.nn.functional.cross_entropy(logits[:, :n_col], labels[idx, 0])
            ls = torch.nn.functional.cross_entropy(logits[:, n_col:], labels[idx, 1])
            loss = loss + lc + ls
            accs.append((logits[:, :n_col].argmax(1) == labels[idx, 0]).float().mean().item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{min(accs):.2f}")
        if step % 25 == 0 or step == cfg.text_steps - 1:
            _log(out, {"stage": "text", "step": step, "loss": loss.item(), "colour_acc": min(accs)})
    te.eval()
    _save_ckpt(final, {"model": te.state_dict()})
    return te


# --------------------------------------------------------------------------------------------- cache
def build_cache(out: Path, cfg: TrainConfig, vae, te, tokenizer, images, labels, progress: bool) -> dict:
    import torch

    path = out / "cache.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    caps = all_captions()
    with torch.no_grad():
        states = te(_tokenize(tokenizer, caps))[0]
        means, stds = [], []
        data = _to_tensor(images)
        for i in _tqdm(range(0, len(data), 256), progress, desc="encode"):
            post = vae.encode(data[i : i + 256]).latent_dist
            means.append(post.mean)
            stds.append(post.std)
    mean = torch.cat(means)
    std = torch.cat(stds)
    scaling = float(1.0 / torch.sqrt(mean.var() + (std**2).mean()))
    # each image keeps its own colour/shape/size; the caption template is drawn per step
    cache = {
        "captions": caps,
        "states": states,
        "latent_mean": mean,
        "latent_std": std,
        "scaling_factor": scaling,
        "colour": torch.tensor([COLOUR_NAMES.index(lab["colour"]) for lab in labels]),
        "shape": torch.tensor([SHAPES.index(lab["shape"]) for lab in labels]),
        "size": [lab["size"] for lab in labels],
    }
    cap_index = {c: i for i, c in enumerate(caps)}
    # per image: indices of all compatible captions (padded with -1)
    from models.toy.render import LARGE_TEMPLATES, SMALL_TEMPLATES, TEMPLATES

    comp = []
    for lab in labels:
        ts = (
            list(TEMPLATES)
            + (list(SMALL_TEMPLATES) if lab["size"] == "small" else [])
            + (list(LARGE_TEMPLATES) if lab["size"] == "large" else [])
        )
        row = [cap_index[t.format(colour=lab["colour"], shape=lab["shape"])] for t in ts]
        comp.append(row + [-1] * (len(TEMPLATES) + 1 - len(row)))
    cache["compatible"] = torch.tensor(comp)
    _save_ckpt(path, cache)
    _log(out, {"stage": "cache", "scaling_factor": scaling, "latent_std": float(mean.std())})
    return cache


# ---------------------------------------------------------------------------------------------- UNet
def _noise_schedule():
    import torch

    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def _unet_batch(
    cache: dict, cfg: TrainConfig, step: int, batch: int, stage: int = 4, dropout: float | None = None
):
    import torch

    g = _step_generator(cfg.seed, stage, step)
    n = len(cache["latent_mean"])
    idx = torch.randint(0, n, (batch,), generator=g)
    z0 = cache["latent_mean"][idx] + cache["latent_std"][idx] * torch.randn(
        cache["latent_mean"][idx].shape, generator=g
    )
    z0 = z0 * cache["scaling_factor"]
    comp = cache["compatible"][idx]
    n_ok = (comp >= 0).sum(1)
    pick = (torch.rand(batch, generator=g) * n_ok).long().clamp(max=comp.shape[1] - 1)
    cap = comp[torch.arange(batch), pick]
    drop = torch.rand(batch, generator=g) < (cfg.caption_dropout if dropout is None else dropout)
    cap = torch.where(drop, torch.zeros_like(cap), cap)  # caption 0 is ""
    t = torch.randint(0, 1000, (batch,), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    return z0, cap, t, noise, idx


def _unet_loss(unet, cache, alphas, z0, cap, t, noise, snr_gamma: float | None, reduce: bool = True):
    import torch

    a = alphas[t].view(-1, 1, 1, 1)
    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
    pred = unet(zt, t, encoder_hidden_states=cache["states"][cap]).sample
    err = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    if snr_gamma:
        snr = a.view(-1) / (1 - a.view(-1))
        err = err * torch.clamp(snr, max=snr_gamma) / snr
    return err.mean() if reduce else err


def loss_gap(unet, cache, cfg: TrainConfig, n: int | None = None) -> dict:
    """Noise-prediction MSE with the right caption vs the empty caption on a fixed held-out draw."""
    import torch

    alphas = _noise_schedule()
    with torch.no_grad():
        z0, cap, t, noise, _ = _unet_batch(cache, cfg, 0, n or cfg.gap_n, stage=9, dropout=0.0)
        right = _unet_loss(unet, cache, alphas, z0, cap, t, noise, None, reduce=False)
        empty = _unet_loss(unet, cache, alphas, z0, torch.zeros_like(cap), t, noise, None, reduce=False)
        hi = t >= 500
    gap = 1 - right.mean().item() / empty.mean().item()
    gap_hi = 1 - right[hi].mean().item() / empty[hi].mean().item()
    return {
        "mse_right": right.mean().item(),
        "mse_empty": empty.mean().item(),
        "gap": gap,
        "gap_t500": gap_hi,
    }


def train_unet(out: Path, cfg: TrainConfig, cache: dict, progress: bool) -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    final = out / "unet_final.pt"
    ckpt = out / "unet_ckpt.pt"
    torch.manual_seed(cfg.seed + 3)
    unet = UNet2DConditionModel(**model_configs(cfg)["unet"])
    if final.exists():
        unet.load_state_dict(torch.load(final, weights_only=False)["model"])
        return unet.eval()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=1e-2)
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        unet.load_state_dict(state["model"])
        if state.get("opt") is not None:
            opt.load_state_dict(state["opt"])
        start = state["step"]
    alphas = _noise_schedule()
    unet.train()
    last_ck = time.time()
    bar = _tqdm(range(start, cfg.unet_steps), progress, desc="unet", initial=start, total=cfg.unet_steps)
    ema = None
    t0 = time.time()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg.unet_steps, cfg.unet_lr, cfg.unet_warmup)
        z0, cap, t, noise, _ = _unet_batch(cache, cfg, step, cfg.unet_batch)
        loss = _unet_loss(unet, cache, alphas, z0, cap, t, noise, cfg.snr_gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if progress:
            bar.set_postfix(loss=f"{ema:.4f}")
        if step % 50 == 0:
            _log(out, {"stage": "unet", "step": step, "loss": loss.item(), "ema": ema, "s": time.time() - t0})
        if (step + 1) % 500 == 0 or step == cfg.unet_steps - 1:
            unet.eval()
            gap = loss_gap(unet, cache, cfg)
            unet.train()
            _log(out, {"stage": "unet_gap", "step": step + 1, **gap})
            if progress:
                bar.write(f"step {step + 1}: {gap}")
        if time.time() - last_ck > cfg.checkpoint_every_s:
            _save_ckpt(ckpt, {"model": unet.state_dict(), "opt": opt.state_dict(), "step": step + 1})
            last_ck = time.time()
    unet.eval()
    _save_ckpt(final, {"model": unet.state_dict(), "opt": opt.state_dict(), "steps": cfg.unet_steps})
    ckpt.unlink(missing_ok=True)
    return unet


# ---------------------------------------------------------------------------------------------- save
def save_pipeline(out_dir: Path, vae, te, unet, tokenizer, scaling: float, record: dict) -> Path:
    import copy

    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    from models.components import SD_SCHEDULER_CONFIG

    vae = copy.deepcopy(vae).to(torch.float16)
    vae.register_to_config(scaling_factor=scaling)
    scheduler = PNDMScheduler.from_config(
        {k: v for k, v in SD_SCHEDULER_CONFIG.items() if k != "_class_name"}
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=copy.deepcopy(te).to(torch.float16),
        tokenizer=tokenizer,
        unet=copy.deepcopy(unet).to(torch.float16),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(out_dir), safe_serialization=True)
    # transformers 5 loads a model in the dtype its config records ("auto"); record float32 so that a plain
    # StableDiffusionPipeline.from_pretrained(dir) gives one dtype throughout (fp16 weights are upcast)
    te_cfg = out_dir / "text_encoder" / "config.json"
    cfg_json = json.loads(te_cfg.read_text())
    for key in ("dtype", "torch_dtype"):
        if key in cfg_json:
            cfg_json[key] = "float32"
    te_cfg.write_text(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n")
    (out_dir / "safeaudit.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out_dir


def train(
    out_dir: str | os.PathLike,
    seed: int = 0,
    vae_steps: int | None = None,
    text_steps: int | None = None,
    unet_steps: int | None = None,
    n_images: int | None = None,
    resume: bool = True,
    progress: bool = True,
    threads: int | None = None,
    **overrides: Any,
) -> Path:
    """Train every stage into `out_dir` (checkpoints, log.jsonl) and save the pipeline to `out_dir/pipeline`.

    With resume=True a finished stage is loaded and an interrupted one continues from its last checkpoint;
    the data drawn at step k depends only on (seed, stage, k), so a resumed run matches an uninterrupted one
    up to floating-point order. Returns the pipeline folder."""
    import torch

    from models.components import load_clip_tokenizer

    out = Path(out_dir)
    if out.exists() and not resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    cfg = TrainConfig(seed=seed, **overrides)
    if resume and cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
        cfg = TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()})
    for name, val in (
        ("vae_steps", vae_steps),
        ("text_steps", text_steps),
        ("unet_steps", unet_steps),
        ("n_images", n_images),
        ("threads", threads),
    ):
        if val is not None:
            setattr(cfg, name, val)  # a longer schedule may extend a finished run: see unet_final below
    cfg_path.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    torch.set_num_threads(cfg.threads)
    t_start = time.time()
    tokenizer = load_clip_tokenizer()
    images, labels = sample_dataset(cfg.n_images, cfg.seed)
    vae = train_vae(out, cfg, images, progress)
    te = train_text(out, cfg, tokenizer, progress)
    cache = build_cache(out, cfg, vae, te, tokenizer, images, labels, progress)
    final = out / "unet_final.pt"
    if final.exists():
        done = torch.load(final, weights_only=False)
        if done.get("steps", cfg.unet_steps) < cfg.unet_steps:  # extend: continue from the final weights
            _save_ckpt(
                out / "unet_ckpt.pt", {"model": done["model"], "opt": done.get("opt"), "step": done["steps"]}
            )
            final.unlink()
    unet = train_unet(out, cfg, cache, progress)
    state = torch.load(final, weights_only=False)
    if "steps" not in state:
        state["steps"] = cfg.unet_steps
        _save_ckpt(final, state)
    gap = loss_gap(unet, cache, cfg)
    wall = time.time() - t_start
    record = {
        "kind": "toy-trained",
        "config": asdict(cfg),
        "scaling_factor": cache["scaling_factor"],
        "loss_gap": gap,
        "wall_s_this_call": round(wall, 1),
        "params": {
            "vae": sum(p.numel() for p in vae.parameters()),
            "text_encoder": sum(p.numel() for p in te.parameters()),
            "unet": sum(p.numel() for p in unet.parameters()),
        },
    }
    _log(out, {"stage": "done", **record})
    return save_pipeline(out / "pipeline", vae, te, unet, tokenizer, cache["scaling_factor"], record)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="training folder (checkpoints, log.jsonl, pipeline/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-steps", type=int)
    p.add_argument("--text-steps", type=int)
    p.add_argument("--unet-steps", type=int)
    p.add_argument("--n-images", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--export", help="copy the trained pipeline folder here (e.g. models/toy/weights)")
    a = p.parse_args(argv)
    pipe_dir = train(
        a.out,
        seed=a.seed,
        vae_steps=a.vae_steps,
        text_steps=a.text_steps,
        unet_steps=a.unet_steps,
        n_images=a.n_images,
        resume=not a.no_resume,
        progress=not a.no_progress,
        threads=a.threads,
    )
    print(f"saved {pipe_dir}")
    if a.export:
        dest = Path(a.export)
        card = dest / "README.md"
        keep = card.read_text() if card.exists() else None
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(pipe_dir, dest)
        if keep is not None:
            card.write_text(keep)
        print(f"exported to {dest}")


if __name__ == "__main__":
    main()
