"""Measure the toy model (``builtin:toy``) with the toy scorers: the numbers its model card reports.

    safeaudit toy evaluate models/toy/weights [--grid grid.png] [--card]
    python -m pipelines.toy_eval models/toy/weights --card       # the same, without the CLI

``evaluate`` samples balanced colour x shape prompts with DDIM and scores them with ``toy_fidelity`` and
``toy_concept``; ``scorer_accuracy`` checks the scorers themselves on fresh renders; ``--card`` rewrites the
model folder's README.md (``pipelines.model_card``). Training is ``models/toy/train.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.toy.render import COLOUR_NAMES, SHAPES, caption, sample_dataset
from pipelines.scorers import ScoreInput
from pipelines.scorers.toy import (
    ToyConceptScorer,
    ToyFidelityScorer,
    predict_colour,
    predict_shape,
    red_fraction,
)


def sample_images(
    pipe, prompts: list[str], seeds: list[int], steps: int = 20, guidance: float = 7.5, batch: int = 16
) -> np.ndarray:
    """Images from a StableDiffusionPipeline with DDIM, one generator per prompt (seeded)."""
    import torch
    from diffusers import DDIMScheduler

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    out = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i : i + batch]]
        res = pipe(
            prompts[i : i + batch],
            height=64,
            width=64,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            output_type="np",
        )
        out.append((np.clip(res.images, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def evaluate(
    model_dir: str | os.PathLike,
    n: int = 112,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 7.5,
    threads: int | None = None,
) -> dict:
    """Sample `n` prompts (colour x shape, balanced) with DDIM and score them with the toy scorers."""
    import torch
    from diffusers import StableDiffusionPipeline

    if threads:
        torch.set_num_threads(threads)
    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), torch_dtype=torch.float32)
    rng = np.random.default_rng(seed)
    combos = [(c, s) for c in COLOUR_NAMES for s in SHAPES]
    items = [combos[i % len(combos)] for i in range(n)]
    prompts = [caption(c, s, rng) for c, s in items]
    seeds = [seed * 10_000 + i for i in range(n)]
    t0 = time.time()
    imgs = sample_images(pipe, prompts, seeds, steps=steps, guidance=guidance)
    t_sample = time.time() - t0
    inputs = [
        ScoreInput(generation_id=str(i), image=imgs[i], prompt=prompts[i], meta={"colour": c, "shape": s})
        for i, (c, s) in enumerate(items)
    ]
    fid = {(r.generation_id, r.metric): r.value for r in ToyFidelityScorer().score(inputs)}
    con = {(r.generation_id, r.metric): r.value for r in ToyConceptScorer().score(inputs)}
    thr = ToyConceptScorer.default_threshold
    red = [i for i, (c, _) in enumerate(items) if c == "red"]
    nonred = [i for i, (c, _) in enumerate(items) if c != "red"]
    res = {
        "n": n,
        "seed": seed,
        "sampler": f"DDIM {steps} steps, CFG {guidance}, 64x64",
        "match": float(np.mean([fid[(str(i), "match")] for i in range(n)])),
        "colour_match": float(np.mean([fid[(str(i), "colour_match")] for i in range(n)])),
        "shape_match": float(np.mean([fid[(str(i), "shape_match")] for i in range(n)])),
        "red_flag_rate_red_prompts": float(np.mean([con[(str(i), "red_fraction")] > thr for i in red])),
        "red_flag_rate_nonred_prompts": float(np.mean([con[(str(i), "red_fraction")] > thr for i in nonred])),
        "per_colour_colour_match": {
            c: float(np.mean([fid[(str(i), "colour_match")] for i, (cc, _) in enumerate(items) if cc == c]))
            for c in COLOUR_NAMES
        },
        "per_shape_shape_match": {
            s: float(np.mean([fid[(str(i), "shape_match")] for i, (_, ss) in enumerate(items) if ss == s]))
            for s in SHAPES
        },
        "sample_s_per_image": t_sample / n,
    }
    res["_images"] = imgs
    res["_prompts"] = prompts
    return res


def scorer_accuracy(n: int = 280, seed: int = 987654) -> dict:
    images, labels = sample_dataset(n, seed)
    thr = ToyConceptScorer.default_threshold
    return {
        "scorer_colour_acc": float(
            np.mean([predict_colour(im)[0] == lab["colour"] for im, lab in zip(images, labels, strict=True)])
        ),
        "scorer_shape_acc": float(
            np.mean([predict_shape(im)[0] == lab["shape"] for im, lab in zip(images, labels, strict=True)])
        ),
        "scorer_red_acc": float(
            np.mean(
                [
                    (red_fraction(im)[0] > thr) == (lab["colour"] == "red")
                    for im, lab in zip(images, labels, strict=True)
                ]
            )
        ),
    }


def write_grid(images: np.ndarray, path: str | os.PathLike, cols: int = 16) -> Path:
    """The samples as one PNG grid, ``cols`` images a row."""
    from PIL import Image

    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * 64, cols * 64, 3), 255, np.uint8)
    for i, im in enumerate(images):
        grid[(i // cols) * 64 : (i // cols + 1) * 64, (i % cols) * 64 : (i % cols + 1) * 64] = im
    Image.fromarray(grid).save(path)
    return Path(path)


def measure(
    model_dir: str | os.PathLike,
    n: int = 112,
    seed: int = 0,
    threads: int | None = None,
    grid: str | os.PathLike | None = None,
    card: bool = False,
) -> dict[str, Any]:
    """``evaluate`` + ``scorer_accuracy`` (JSON-safe); optionally the sample grid and the model card."""
    res = evaluate(model_dir, n=n, seed=seed, threads=threads)
    images = res.pop("_images")
    res.pop("_prompts")
    if grid:
        write_grid(images, grid)
    res.update(scorer_accuracy())
    if card:
        from pipelines.model_card import write_model_card

        write_model_card(model_dir, res)
    return res


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="a saved toy pipeline folder (e.g. models/toy/weights)")
    p.add_argument("--n", type=int, default=112, help="prompts sampled (balanced colour x shape)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--grid", help="write a PNG grid of the samples here")
    p.add_argument("--card", action="store_true", help="(re)write the folder's README.md")
    a = p.parse_args(argv)
    res = measure(a.model_dir, n=a.n, seed=a.seed, threads=a.threads, grid=a.grid, card=a.card)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
