"""What pipelines.efficiency records, per method at `max` on the toy model: UNet rows per step per image,
UNet calls per step, peak device memory (CUDA only; NULL on CPU) and sampling seconds per image.

    python bench/bench_efficiency.py --device cuda --json out.json     # or --device cpu

One warm-up call per method, then ``--repeats`` timed calls of ``--batch`` images at 20 DDIM steps, 64 px.
Seconds are wall time (synchronised on CUDA) from one machine: compare methods within one run only.
"""

from __future__ import annotations

import argparse
import json
import time

METHODS = [
    ("baseline", "off"),
    ("negative_prompt", "max"),
    ("sld", "max"),
    ("safree", "max"),
    ("safe_denoiser", "max"),
    ("dual_latent", "max"),
]


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from models.components import load_components
    from models.concepts import load_pack
    from models.registry import build_method
    from models.sampler import Request, SamplerSettings, sample
    from pipelines.efficiency import BatchCost, measure

    comp = load_components("builtin:toy", dtype="float32", device=args.device)
    settings = SamplerSettings(scheduler="ddim", steps=20, guidance=7.5, height=64, width=64)
    words = [
        (c, s) for c in ("red", "orange", "pink", "blue") for s in ("circle", "square", "triangle", "star")
    ]
    requests = [Request(f"a {c} {s}", 1000 + i) for i, (c, s) in enumerate((words * 8)[: args.batch])]
    pack = load_pack("toy")
    rows = []
    for name, level in METHODS:
        method = build_method(name, level=level, concept=pack)
        sample(comp, requests[:4], method=method, settings=settings)  # warm-up
        cost = BatchCost()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with measure(comp) as used:
                sample(comp, requests, method=method, settings=settings)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            cost.add(used, settings.steps, len(requests), time.perf_counter() - t0)
        m = cost.manifest()
        row = {"method": name, "level": level, "s_per_image": m["sample_s"] / m["images"]}
        row |= {
            k: m[k]
            for k in ("unet_rows_per_step", "unet_calls_per_step", "peak_mem_bytes", "peak_mem_device")
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": args.device, "torch": torch.__version__, "rows": rows}, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
