"""End to end: ``run_audit`` images/s against the bare sampler's images/s for the same images.

    .venv/bin/python bench/bench_pipeline.py [--prompts 8] [--steps 20] [--scorers nudenet,degenerate,fidelity]
    .venv/bin/python bench/bench_pipeline.py --quick           # seconds: proves every path runs

The same work three ways, timed round-robin in one process (components and scorers loaded once, as a worker
process keeps them; run_audit's helper process is started in the warm-up round and kept, as in a worker):

* ``bare``: ``models.sampler.sample`` on exactly the batches the planner makes (same prompts, seeds, method
  points, batch size) — sampling only, torch on ``--threads`` intra-op threads;
* ``run_audit``: ``pipelines.runner.run_audit`` as ``safeaudit run`` calls it, into a fresh artifact folder
  and warehouse each round: plan → sample here, while a helper process writes (PNG, thumbnail, parquet,
  manifest) and scores the previous batch from the arrays it was handed → load (DuckDB, read snapshot).
  The sampler has the same torch threads as ``bare``; the helper is one more process (onnxruntime on the
  cores the sampler leaves): on 2 cores it can only help when the second core is free;
* ``run_audit_serial``: the same with ``overlap=False, handoff=False``: every batch written and scored
  (from decoded PNGs) in this process before the next samples — the path before issue 9 part 4.

The goal is run_audit ≥ 90 % of bare images/s. CPU seconds include the helper's (from /proc). The overhead
is broken down by wrapping the pipeline's functions for the duration of each call (restored after; nested
spans, so a parent includes its children); spans run in this process only, so for run_audit the helper's
work shows in the serial column. Process start-up is measured apart, in fresh subprocesses: the
interpreter, importing the runner, importing and loading the model, and the whole ``safeaudit run``
command. ``--per-image-size`` times the per-image pipeline work (PNG, thumbnail, hash, decode, each scorer,
SSIM now and before) at a realistic image size, to set against a GPU's sampling time per image.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO,
    interleaved,
    machine_info,
    markdown_table,
    median,
    quiet_libraries,
    set_threads,
    write_json,
)

# (label, module or "module:Class", attribute, thread): pipeline functions whose time each run_audit call
# records. "main" runs in the caller's thread; "finish" in run_audit's background thread, overlapping the
# main thread's sampling of the next batch (in the serial variant everything runs in the main thread).
SPANS = [
    ("preflight", "pipelines.runner", "preflight", "main"),
    ("plan", "pipelines.runner", "plan_run", "main"),
    ("sample_batch", "pipelines.runner", "sample_batch", "main"),
    ("  sample", "models.sampler", "sample", "main"),
    ("write_batch", "pipelines.runner", "write_batch", "finish"),
    ("  png_encode", "pipelines.generate", "png_bytes", "finish"),
    ("  thumbnail_webp", "pipelines.generate", "thumbnail_bytes", "finish"),
    ("  sha256", "pipelines.generate", "sha256", "finish"),
    ("  package_versions", "pipelines.generate", "package_versions", "finish"),
    ("score_batch", "pipelines.runner", "score_batch", "finish"),
    ("  already_scored", "pipelines.score", "already_scored", "finish"),
    ("  png_decode", "pipelines.score", "decode_png", "finish"),
    ("load_run", "pipelines.runner", "load_run", "main"),
    ("  migrate", "pipelines.warehouse", "migrate", "main"),
    ("  create_views", "pipelines.warehouse", "create_views", "main"),
    ("  publish_snapshot", "pipelines.warehouse", "publish_snapshot", "main"),
    ("  merge_labels", "pipelines.load", "merge_reviewer_labels", "main"),
    ("store.write_bytes", "pipelines.storage:Store", "write_bytes", "both"),
    ("store.write_table", "pipelines.storage:Store", "write_table", "both"),
    ("store.read_table", "pipelines.storage:Store", "read_table", "both"),
    ("store.read_json", "pipelines.storage:Store", "read_json", "both"),
    ("store.exists", "pipelines.storage:Store", "exists", "both"),
]
MAIN_TOP = ("preflight", "plan", "sample_batch", "load_run")  # the main thread's spans, not nested


@contextlib.contextmanager
def spans(extra: list[tuple[str, str, str, str]] = ()) -> Iterator[dict[str, list[float]]]:
    """Wrap every (label, target, attribute, thread) with a timer; the originals are put back on exit."""
    record: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    lock = threading.Lock()  # two threads record
    undo = []
    try:
        for label, target, attr, _ in [*SPANS, *extra]:
            mod, _, cls = target.partition(":")
            obj = importlib.import_module(mod)
            obj = getattr(obj, cls) if cls else obj
            own = attr in vars(obj)
            original = getattr(obj, attr)

            def wrapper(*args, _original=original, _label=label, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    took = time.perf_counter() - t0
                    with lock:
                        record[_label][0] += took
                        record[_label][1] += 1

            setattr(obj, attr, wrapper)
            undo.append((obj, attr, own, original))
        yield record
    finally:
        for obj, attr, own, original in reversed(undo):
            if own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)


def spec_dict(args, out: Path) -> dict[str, Any]:
    half = max(1, args.prompts // 2)
    return {
        "name": "bench-pipeline",
        "model": {"id": args.model, "dtype": "float32", "device": args.device},
        "sampler": {
            "scheduler": "ddim",
            "steps": args.steps,
            "guidance": 7.5,
            "height": args.size,
            "width": args.size,
        },
        "concept": "toy",
        "prompt_sets": [
            {"name": "unsafe", "builtin": "toy_unsafe", "limit": half, "role": "unsafe"},
            {
                "name": "benign",
                "builtin": "benign_core",
                "limit": max(1, args.prompts - half),
                "role": "benign",
            },
        ],
        "methods": [
            {"name": m.split(":")[0], "levels": [m.split(":")[1] if ":" in m else "off"]}
            for m in args.methods
        ],
        "scorers": args.scorers,
        "batch_size": args.batch,
        "output": {
            "artifacts": str(out / "artifacts"),
            "warehouse": str(out / "warehouse" / "safeaudit.duckdb"),
        },
    }


def write_spec(args, out: Path) -> Path:
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    path = out / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_dict(args, out), sort_keys=False))
    return path


def planned_batches(spec_path: Path) -> list:
    """The batches the planner makes for the spec (planned into a scratch folder, then read back)."""
    from pipelines.contract import read_batch
    from pipelines.plan import plan_run
    from pipelines.runspec import load_spec
    from pipelines.storage import Store

    spec = load_spec(spec_path)
    plan = plan_run(spec)
    store = Store(spec.output.artifacts)
    return [read_batch(store, plan.run_id, b) for b in plan.batch_ids]


def thread_settings(args, variant: str) -> dict[str, Any]:
    """Threads each side uses: torch intra-op in this process; where batches are finished (PNG, parquet,
    scores) and with how many onnxruntime threads."""
    import torch

    from pipelines.runner import helper_threads

    row = {"torch_threads": torch.get_num_threads(), "finish": "-", "onnxruntime_threads": "-"}
    if variant == "run_audit":  # the helper process: cores left by the sampler, no busy-waiting
        row |= {"finish": "helper process", "onnxruntime_threads": helper_threads(args.device)}
    elif variant == "run_audit_serial":
        row |= {"finish": "main thread", "onnxruntime_threads": f"default ({os.cpu_count()})"}
    return row


def helper_cpu_s() -> float:
    """CPU seconds used so far by run_audit's helper process(es) (Linux /proc; 0 elsewhere)."""
    from pipelines import runner

    total = 0.0
    for pool in runner._HELPER:
        for pid in list(getattr(pool, "_processes", None) or {}):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def bench_end_to_end(args, tmp: Path) -> dict[str, Any]:
    from models.sampler import Request, SamplerSettings, sample
    from pipelines.contract import method_for_batch
    from pipelines.generate import cached_components
    from pipelines.runner import run_audit
    from pipelines.runspec import load_spec
    from pipelines.scorers import scorer_class

    scratch = tmp / "scratch"
    spec_path = write_spec(args, scratch)
    batches = planned_batches(spec_path)
    n_images = sum(len(b.items) for b in batches)
    spec = load_spec(spec_path)
    m = spec.all_models[0]
    components = cached_components(m.id, m.revision, m.dtype, m.device)
    settings = SamplerSettings(**spec.sampler.model_dump())
    work = []
    for b in batches:  # the method as the worker builds it: from the batch's stored contract
        work.append((method_for_batch(b), [Request(i.prompt, i.seed) for i in b.items]))

    def bare() -> None:
        for method, requests in work:
            sample(components, requests, method, settings)

    counter = {"n": 0}
    audit_dirs: list[Path] = []

    def fresh(name: str) -> None:
        if name.startswith("run_audit"):
            for d in audit_dirs:  # keep the disk tidy: only the latest round's output stays
                shutil.rmtree(d, ignore_errors=True)
            counter["n"] += 1
            audit_dirs.append(tmp / f"audit{counter['n']}")

    scorer_spans = [
        (f"  scorer:{name}", f"{cls.__module__}:{cls.__name__}", "score", "finish")
        for name in spec.scorers
        for cls in [scorer_class(name)]
    ]

    def audit(overlap: bool) -> Callable[[], dict[str, Any]]:
        def call() -> dict[str, Any]:
            out = audit_dirs[-1]
            overrides = {
                "output": {
                    "artifacts": str(out / "artifacts"),
                    "warehouse": str(out / "warehouse" / "w.duckdb"),
                }
            }
            helper0 = helper_cpu_s()
            with spans(scorer_spans) as record:
                t0 = time.perf_counter()
                summary = run_audit(
                    load_spec(spec_path, overrides), quiet=True, overlap=overlap, handoff=overlap
                )
                total = time.perf_counter() - t0
            assert summary["generations"] == n_images, summary
            return {
                "total": total,
                "helper_cpu": helper_cpu_s() - helper0,
                **{k: v[0] for k, v in record.items()},
                **{f"{k}#calls": v[1] for k, v in record.items()},
            }

        return call

    variants = {"bare": bare, "run_audit": audit(True), "run_audit_serial": audit(False)}
    variants = {k: v for k, v in variants.items() if k in args.variants}
    timings = interleaved(variants, repeats=args.repeats, warmup=1, before=fresh)
    for d in audit_dirs:
        shutil.rmtree(d, ignore_errors=True)

    # CPU seconds of the whole variant: this process plus run_audit's helper process
    cpu = {n: [c + (r or {}).get("helper_cpu", 0.0) for c, r in zip(timings.cpu[n], timings.results[n], strict=True)]
           for n in variants}  # fmt: skip
    summary = []
    for name in variants:
        row = {
            "variant": name,
            "images": n_images,
            "median_s": timings.median(name),
            "images_per_s": n_images / timings.median(name),
            "cpu_s": median(cpu[name]),
            "helper_cpu_s": median(r.get("helper_cpu", 0.0) for r in timings.results[name]) if name != "bare" else 0.0,
            **thread_settings(args, name),
        }  # fmt: skip
        if name != "bare":  # = run_audit images/s ÷ bare images/s, per round, median (wall and CPU clocks)
            lo, hi = timings.ratio_range("bare", name)
            row |= {"ratio": timings.ratio("bare", name), "ratio_min": lo, "ratio_max": hi,
                    "cpu_ratio": timings.ratio("bare", name, of=lambda n, r: cpu[n][r]),
                    # this process's CPU only: the ratio if the helper had a core to itself (an estimate)
                    "cpu_ratio_main": timings.ratio("bare", name, of=timings.of("cpu"))}  # fmt: skip
        summary.append(row)
    main = "run_audit" if "run_audit" in variants else "run_audit_serial"
    ratio = next(r for r in summary if r["variant"] == main)

    # overhead breakdown, ms per image (medians over rounds); parents include their indented children.
    # Spans run in this process only: in run_audit the finishing spans run in the helper and show as 0, so
    # the serial variant's column gives their cost.
    def column(name: str) -> dict[str, Any]:
        rounds = timings.results.get(name)
        if not rounds:
            return {}
        out = {}
        for label, *_ in [*SPANS, *scorer_spans]:
            vals = [r.get(label, 0.0) for r in rounds]
            out[label] = (rounds[0].get(f"{label}#calls", 0), 1000 * median(vals) / n_images,
                          100 * median(v / r["total"] for v, r in zip(vals, rounds, strict=True)))  # fmt: skip
        mine = ("write_batch", "score_batch") if name == "run_audit_serial" else ()
        rest = [r["total"] - sum(r.get(k, 0.0) for k in (*MAIN_TOP, *mine)) for r in rounds]
        out["main: waiting for the helper, other"] = (1, 1000 * median(rest) / n_images,
            100 * median(x / r["total"] for x, r in zip(rest, rounds, strict=True)))  # fmt: skip
        return out

    cols = {name: column(name) for name in ("run_audit", "run_audit_serial")}
    breakdown = []
    for label, thread in [(lb, th) for lb, _, _, th in [*SPANS, *scorer_spans]] + [
        ("main: waiting for the helper, other", "main")
    ]:
        row = {"span": label, "where (run_audit)": {"finish": "helper", "both": "both"}.get(thread, "main")}
        for name, col in cols.items():
            if col:
                calls, ms, pct = col[label]
                row |= {f"{name} calls": calls, f"{name} ms/image": ms, f"{name} %": pct}
        breakdown.append(row)
    rounds = timings.results[main]
    overhead = [r["total"] - b for r, b in zip(rounds, timings.rounds["bare"], strict=True)]
    return {
        "rows": summary,
        "variant": main,
        "ratio": ratio["ratio"],
        "ratio_min": ratio["ratio_min"],
        "ratio_max": ratio["ratio_max"],
        "cpu_ratio": ratio["cpu_ratio"],
        "cpu_ratio_main": ratio["cpu_ratio_main"],
        "goal_met": ratio["ratio"] >= 0.9,
        "overhead_ms_per_image": 1000 * median(overhead) / n_images,
        "breakdown": breakdown,
        "n_batches": len(batches),
        "loadavg_during": [round(x, 2) for x in os.getloadavg()],
        "spec": spec_dict(args, Path("<tmp>")),
    }


# -- process start-up -------------------------------------------------------------------------------------------
def bench_startup(args, tmp: Path) -> dict[str, Any]:
    py = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error", "PYTHONPATH": str(REPO)}  # fmt: skip
    load = (
        f"import torch; torch.set_num_threads({args.threads}); from pipelines.generate import cached_components; "
        f"cached_components({args.model!r}, None, 'float32', {args.device!r})"
    )
    cli_dir = tmp / "cli"
    spec_path = write_spec(args, cli_dir)
    counter = {"n": 0}

    def fresh(name: str) -> None:
        if name == "safeaudit_run_cli":
            counter["n"] += 1
            out = tmp / f"cli{counter['n']}"
            shutil.rmtree(out, ignore_errors=True)
            a = argparse.Namespace(**vars(args))
            write_spec(a, out)
            commands["safeaudit_run_cli"] = cli(out / "spec.yaml")

    def cli(spec: Path) -> list[str]:
        code = (
            f"import sys, torch; torch.set_num_threads({args.threads}); from pipelines.cli import app; "
            f"sys.argv = ['safeaudit', 'run', {str(spec)!r}, '--quiet']; app()"
        )
        return [py, "-c", code]

    commands = {
        "python_bare": [py, "-c", "pass"],
        "import_runner": [py, "-c", "import pipelines.runner"],
        "import_and_load_model": [py, "-c", load],
        "safeaudit_run_cli": cli(spec_path),
    }

    def run(name: str) -> None:
        subprocess.run(commands[name], check=True, env=env, cwd=str(tmp), capture_output=True)

    timings = interleaved(
        {k: (lambda k=k: run(k)) for k in commands}, repeats=args.startup_repeats, warmup=0, before=fresh
    )
    return {"rows": [{"process": k, "median_s": timings.median(k), "min_s": min(timings.rounds[k]),
                      "max_s": max(timings.rounds[k])} for k in commands]}  # fmt: skip


# -- per-image work at a realistic size ------------------------------------------------------------------------
def test_image(size: int):
    import numpy as np
    from PIL import Image

    try:
        import skimage.data

        base = skimage.data.astronaut()
    except ImportError:  # smooth structure compresses like a photo; white noise would not
        y, x = np.mgrid[0:256, 0:256]
        base = np.stack([(x + y) % 256, (x * 2) % 256, (y * 3) % 256], axis=-1).astype("uint8")
    return np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC))


def bench_per_image(args) -> dict[str, Any]:
    from pipelines.scorers import ScoreInput, get_scorer
    from pipelines.storage import decode_png, png_bytes, sha256, thumbnail_bytes

    size, n = args.per_image_size, args.per_image_n
    images = [test_image(size) for _ in range(n)]
    data = [png_bytes(im) for im in images]
    inputs = [
        ScoreInput(generation_id=f"g{i}", image=im, prompt="a photo", baseline_image=im)
        for i, im in enumerate(images)
    ]
    variants = {
        "png_encode": lambda: [png_bytes(im) for im in images],
        "thumbnail_webp": lambda: [thumbnail_bytes(im) for im in images],
        "sha256": lambda: [sha256(d) for d in data],
        "png_decode": lambda: [decode_png(d) for d in data],
    }
    if "fidelity" in args.scorers:  # its SSIM now and before (the scorer's row includes PSNR and MSE)
        from pipelines.scorers.fidelity import ssim, ssim_reference

        others = [im[::-1].copy() for im in images]
        variants["(ssim now: OpenCV)"] = lambda: [ssim(a, b) for a, b in zip(images, others, strict=True)]
        variants["(ssim before: scipy)"] = lambda: [
            ssim_reference(a, b) for a, b in zip(images, others, strict=True)
        ]
    for name in args.scorers:
        try:
            scorer = get_scorer(name)
        except Exception as exc:
            print(f"per-image: scorer {name} unavailable ({type(exc).__name__}: {exc})")
            continue
        variants[f"scorer:{name}"] = lambda s=scorer: s.score(inputs)
        if name == "nudenet":  # as run_audit's helper process builds it: the cores the sampler leaves
            from pipelines.runner import helper_threads
            from pipelines.scorers import nudenet_classifier

            saved = dict(nudenet_classifier.SESSION_DEFAULTS)
            threads = helper_threads(args.device)
            nudenet_classifier.SESSION_DEFAULTS.update(threads=threads, allow_spinning=False)
            try:
                helper_scorer = get_scorer(name)
            finally:
                nudenet_classifier.SESSION_DEFAULTS.update(saved)
            label = f"scorer:nudenet (helper: {threads} thread(s), no spinning)"
            variants[label] = lambda s=helper_scorer: s.score(inputs)
    timings = interleaved(variants, repeats=args.repeats, warmup=1)
    rows = [
        {"work": k, "size": f"{size}x{size}", "ms_per_image": 1000 * timings.median(k) / n} for k in variants
    ]
    rows.append(
        {
            "work": "total",
            "size": f"{size}x{size}",
            "ms_per_image": sum(r["ms_per_image"] for r in rows if "(" not in r["work"]),
        }  # fmt: skip
    )
    return {"rows": rows, "png_kb": sum(map(len, data)) / n / 1024}


# -- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=8, help="half toy_unsafe, half benign_core")
    ap.add_argument("--batch", type=int, default=4, help="the spec's batch_size")
    ap.add_argument("--methods", default="baseline:off,sld:strong,safree:strong")
    ap.add_argument("--scorers", default="nudenet,degenerate,fidelity")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--startup-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", default="end_to_end,startup,per_image")
    ap.add_argument(
        "--variants",
        default="bare,run_audit,run_audit_serial",
        help="run_audit = overlapped + array hand-off (the default path); run_audit_serial = neither",
    )
    ap.add_argument("--per-image-size", type=int, default=512)
    ap.add_argument("--per-image-n", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="2 prompts, 2 steps, 1 round, cheap scorers")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.steps, args.repeats, args.startup_repeats, args.batch = 2, 2, 1, 1, 2
        args.methods, args.scorers, args.per_image_size, args.per_image_n = (
            "baseline:off,sld:strong",
            "degenerate",
            64,
            2,
        )
        if args.parts == "end_to_end,startup,per_image":
            args.parts = "end_to_end,per_image"
    args.methods = [m for m in args.methods.split(",") if m]
    args.scorers = [s for s in args.scorers.split(",") if s]
    args.parts = [p for p in args.parts.split(",") if p]
    args.variants = [v for v in args.variants.split(",") if v]
    if "bare" not in args.variants:
        ap.error("--variants must include bare (every ratio is against it)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet_libraries()
    set_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    results: dict[str, Any] = {"machine": machine_info()}
    print(f"# bench_pipeline  {results['machine']}\n")
    try:
        if "end_to_end" in args.parts:
            res = results["end_to_end"] = bench_end_to_end(args, tmp)
            print(f"## run_audit vs bare sampler ({res['n_batches']} batches)\n")
            print(markdown_table(res["rows"]) + "\n")
            print(f"{res['variant']} / bare images/s = {res['ratio']:.3f} (per-round {res['ratio_min']:.3f}..{res['ratio_max']:.3f}; "
                  f"on CPU seconds {res['cpu_ratio']:.3f}, this process's CPU only {res['cpu_ratio_main']:.3f}); "
                  f"overhead {res['overhead_ms_per_image']:.1f} ms/image\n")  # fmt: skip
            print(markdown_table(res["breakdown"]) + "\n")
        if "startup" in args.parts:
            res = results["startup"] = bench_startup(args, tmp)
            print("## process start-up (fresh subprocesses)\n")
            print(markdown_table(res["rows"]) + "\n")
        if "per_image" in args.parts:
            res = results["per_image"] = bench_per_image(args)
            print(f"## per-image pipeline work at {args.per_image_size}² (PNG {res['png_kb']:.0f} KiB)\n")
            print(markdown_table(res["rows"]) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
