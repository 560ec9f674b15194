"""NudeNet 320n on CPU: per-image vs batched, side by side in one run.

    .venv/bin/python bench/bench_nudenet.py [--n 64] [--size 512] [--repeats 2]

Compares, on the same N images (SD-sized, derived from scikit-image's astronaut/coffee/chelsea with
flips, crops and noise so detections vary):
  * nudenet.NudeDetector.detect, one call per image (numpy BGR input)       -- the package baseline
  * nudenet.NudeDetector.detect_batch(batch_size=4)                          -- the package's batching
  * pipelines.scorers.nudenet.NudeNetScorer.detect at batch 1, 8, 16, 32    -- onnxruntime directly
and prints ms/image, the batched/unbatched ratio, and whether the outputs agree (scores > 0.25).
Variants are timed round-robin, `--repeats` rounds after one warm-up call each; the best round counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    from PIL import Image

    try:
        import skimage.data as sd

        bases = [sd.astronaut(), sd.coffee(), sd.chelsea(), sd.rocket()]
    except ImportError:  # scikit-image is a test extra; fall back to smooth random images
        bases = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(4)]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = bases[i % len(bases)]
        h, w = im.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        im = im[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            im = im[:, ::-1]
        im = np.asarray(
            Image.fromarray(np.ascontiguousarray(im)).resize((size, size), Image.Resampling.BICUBIC)
        )
        noise = rng.normal(0, 6, im.shape)
        out.append(np.clip(im + noise, 0, 255).astype(np.uint8))
    return out


def key(dets) -> list[tuple]:
    return [(d["class"], tuple(d["box"]), round(d["score"], 5)) for d in dets if d["score"] > 0.25]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from nudenet import NudeDetector

    from pipelines.scorers.nudenet import NudeNetScorer

    images = make_images(args.n, args.size)
    bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]
    n = len(images)
    print(f"{n} images {args.size}x{args.size}, cpu_count={os.cpu_count()}, repeats={args.repeats} (best)")

    det = NudeDetector()
    variants = {
        "nudenet.detect (per image)": lambda: [det.detect(b) for b in bgr],
        "nudenet.detect_batch(4)": lambda: det.detect_batch(bgr, batch_size=4),
    }
    for bs in (1, 8, 16, 32):
        sc = NudeNetScorer(batch_size=bs)
        variants[f"scorer batch={bs}"] = lambda sc=sc: sc.detect(images)
    # round-robin so that background load hits every variant alike; best of `repeats` after a warm-up
    outputs = {name: fn() for name, fn in variants.items()}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    results = {name: (best[name], outputs[name]) for name in variants}

    ref_s, ref_out = results["nudenet.detect (per image)"]
    ref_keys = [key(d) for d in ref_out]
    base_s = results["scorer batch=1"][0]
    print(f"{'variant':32s} {'ms/image':>9s} {'vs nudenet.detect':>18s} {'vs scorer b=1':>14s}  same output")
    for name, (secs, out) in results.items():
        same = all(key(a) == b for a, b in zip(out, ref_keys, strict=True))
        print(f"{name:32s} {1000 * secs / n:9.1f} {ref_s / secs:17.2f}x {base_s / secs:13.2f}x  {same}")
    n_det = sum(len(d) for d in results["scorer batch=8"][1])
    print(
        f"stored detections (floor 0.1): {n_det} over {n} images; nudenet's own (> 0.25): {sum(map(len, ref_keys))}"
    )


if __name__ == "__main__":
    main()
