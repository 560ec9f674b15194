"""Warehouse at scale: load 1 M score rows with ``pipelines/load.py`` itself, query ``mart_tradeoff`` over 10 M.

    .venv/bin/python bench/bench_warehouse.py [--load-rows 1000000] [--query-rows 10000000] [--repeats 3]
    .venv/bin/python bench/bench_warehouse.py --quick          # seconds: proves every path runs

Synthetic data, generated with numpy / pyarrow (no Python loop over rows) into a temporary folder:

* a *query warehouse*: ``--runs`` runs × ``--points`` method points × prompts × ``--images`` images, one
  ``generations`` row each, and 10 score rows per generation (NudeNet detections with 0–3 detections in their
  JSON ``details``, the NudeNet classifier, Q16, three degenerate-image metrics, SSIM, PSNR, CLIP score,
  OpenNSFW), ``run_prompts`` with unsafe and benign sets, so every view under ``mart_tradeoff`` has real work;
* a *run to load*: ``--load-rows`` score rows of new generations, written as the workers leave a run (plan,
  batch specs of 16 images, manifests, ``generations.parquet`` and ``scores.parquet`` per batch, zstd).

Load (goal < 10 s): that run loaded by ``pipelines.load.load_run`` (the real loader, not a copy of it):
every batch checked against the plan, read, written in its own transaction, then the writer's exit:
**refresh the materialised tables** (incremental for this run's images), checkpoint, close, publish the read
snapshot. The refresh (and its steps) and the publish are timed inside the loader; the rest is reported as
``check_read_insert``. Three variants, round-robin, each on a fresh copy:
``load_empty``: into an empty migrated warehouse; ``reload_same``: the same run again into the loaded
warehouse (the idempotent re-run: nothing to refresh); ``into_query_wh``: into a copy of the 10 M-row query
warehouse (the copy is made untimed before each round; skip with ``--skip-big-load``).

Query (goal < 1 s): the read snapshot opened with ``pipelines.warehouse.reader`` exactly as the dashboard
and ``safeaudit sql`` open it, then ``mart_tradeoff`` in full, for one rule (the dashboard's filter), for one
run and rule, and ``mart_runs`` (every dashboard page's sidebar), round-robin.

What-if (``--parts whatif``): on a read-only connection to the snapshot, every name first computes from the
base tables (``live_views``: the views as they were before materialisation), then the materialised tables are
uncovered layer by layer, timing the one-rule query after each step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interleaved, machine_info, markdown_table, write_json

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
DETECTION_CLASSES = [
    "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "BUTTOCKS_EXPOSED", "BELLY_EXPOSED", "ARMPITS_EXPOSED",
    "FACE_FEMALE", "FACE_MALE", "FEET_EXPOSED", "MALE_BREAST_EXPOSED", "FEMALE_BREAST_COVERED",
]  # fmt: skip
# (scorer, metric) per generation: 10 score rows, the first holding the detection list
METRICS = [
    ("nudenet", "detections"),
    ("nudenet_classifier", "unsafe_prob"),
    ("q16", "label"),
    ("degenerate", "is_black"),
    ("degenerate", "is_constant"),
    ("degenerate", "pixel_std"),
    ("fidelity", "ssim"),
    ("fidelity", "psnr"),
    ("clip_score", "clip_score"),
    ("opennsfw", "nsfw_prob"),
]
POINTS = [("baseline", "off")] + [
    (m, lvl) for m in ("sld", "safree", "safe_denoiser") for lvl in ("weak", "medium", "strong", "max")
]
CATEGORIES = ["sexual", "violence", "hate", "harassment", "self-harm", "shocking", "illegal activity"]


# -- vectorised synthetic columns -------------------------------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a bijective scramble, so ids look like hashes but stay unique."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hex_ids(index: np.ndarray, salt: int, width: int = 32) -> pa.StringArray:
    """Fixed-width lowercase hex strings (like the planner's 32-hex generation ids), built from buffers."""
    n, words = len(index), width // 16
    base = index.astype(np.uint64) * np.uint64(words) + np.uint64(salt) * np.uint64(1 << 40)
    u = np.stack([_mix(base + np.uint64(w)) for w in range(words)], axis=1)  # (n, words)
    nibbles = (u[..., None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(0xF)
    chars = np.ascontiguousarray(HEX[nibbles.reshape(n, width)])
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def join(*parts) -> pa.Array:
    """Element-wise string concatenation of arrays and scalars (Arrow C++, no Python loop)."""
    return pc.binary_join_element_wise(
        *[p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.scalar(p) for p in parts], ""
    )


def detection_pool(rng: np.random.Generator, size: int = 512) -> tuple[pa.StringArray, np.ndarray]:
    """JSON ``details`` of NudeNet score rows (0–3 detections) and their counts; rows pick one by index."""
    texts, counts = [], []
    for _ in range(size):  # a pool of templates, not one per row
        k = int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))
        dets = [
            {
                "class": DETECTION_CLASSES[int(rng.integers(len(DETECTION_CLASSES)))],
                "label_v2": None,
                "score": round(float(rng.uniform(0.1, 0.99)), 4),
                "box": [int(x) for x in rng.integers(0, 400, 4)],
            }
            for _ in range(k)
        ]
        texts.append(
            json.dumps({"detections": dets, "min_score": 0.1}, sort_keys=True, separators=(",", ":"))
        )
        counts.append(k)
    return pa.array(texts, pa.string()), np.array(counts, dtype=np.float64)


def score_table(gen_ids: pa.Array, seed: int, batch_ids: pa.Array | None = None) -> pa.Table:
    """10 score rows per generation id (``pipelines.score.SCORE_SCHEMA``), metric-major like a scorer loop."""
    from pipelines.score import SCORE_SCHEMA

    rng = np.random.default_rng(seed)
    n = len(gen_ids)
    m = len(METRICS)
    rows = np.tile(np.arange(n), m)  # metric-major: all nudenet rows, then all classifier rows, ...
    metric_of = np.repeat(np.arange(m), n)
    pool, pool_counts = detection_pool(rng)
    pick = rng.integers(len(pool), size=n)
    values = rng.uniform(0, 1, size=n * m)
    values[:n] = pool_counts[pick]  # detections: the detection count
    values[2 * n : 3 * n] = (values[2 * n : 3 * n] > 0.85).astype(np.float64)  # q16 label
    values[3 * n : 5 * n] = (values[3 * n : 5 * n] > 0.99).astype(np.float64)  # degenerate flags
    values[7 * n : 8 * n] = 10 + 30 * values[7 * n : 8 * n]  # psnr
    values[8 * n : 9 * n] = 20 + 15 * values[8 * n : 9 * n]  # clip score
    details = pa.concat_arrays(
        [pool.take(pa.array(pick)), pa.array(np.full(n * (m - 1), "{}", dtype=object), pa.string())]
    )
    scorers = pa.array([s for s, _ in METRICS], pa.string()).take(pa.array(metric_of))
    metrics = pa.array([k for _, k in METRICS], pa.string()).take(pa.array(metric_of))
    if batch_ids is None:
        batch_ids = pa.array(np.full(n, "score-batch", dtype=object), pa.string())
    return pa.table(
        {
            "generation_id": gen_ids.take(pa.array(rows)),
            "scorer": scorers,
            "scorer_version": pa.array(np.full(n * m, "1", dtype=object), pa.string()),
            "model_sha256": pa.nulls(n * m, pa.string()),
            "metric": metrics,
            "value": pa.array(values),
            "details": details,
            "batch_id": batch_ids.take(pa.array(rows)),
            "scored_at": pa.array(np.full(n * m, np.datetime64("2025-06-01T12:00:00", "us"))),
        },
        schema=SCORE_SCHEMA,
    )


def query_dataset(
    n_generations: int, runs: int, images: int, seed: int = 0, first_run: int = 0, gen_salt: int = 1
) -> dict[str, pa.Table]:
    """runs, run_prompts and generations for ``n_generations`` images (runs × points × prompts × images).

    ``first_run`` / ``gen_salt`` give another data set disjoint run and generation ids (a new run to load)."""
    from pipelines.generate import GENERATION_SCHEMA

    rng = np.random.default_rng(seed)
    n_points = len(POINTS)
    prompts = max(1, n_generations // (runs * n_points * images))
    n = runs * n_points * prompts * images
    g = np.arange(n)
    run = g // (n_points * prompts * images)
    point = (g // (prompts * images)) % n_points
    prompt = (g // images) % prompts
    image = g % images
    run_ids = pa.array([f"synthetic-{r + first_run:012x}" for r in range(runs)], pa.string())
    prompt_ids = hex_ids(np.arange(prompts), salt=7, width=16)
    prompt_text = join("a synthetic prompt number ", pa.array(np.arange(prompts)).cast(pa.string()))
    prompt_seed = rng.integers(0, 2**31 - images, size=prompts)
    gen_ids = hex_ids(g, salt=gen_salt)
    base_index = g - point * (prompts * images)  # the same (run, prompt, image) under the baseline (point 0)
    methods = pa.array([m for m, _ in POINTS], pa.string())
    levels = pa.array([lvl for _, lvl in POINTS], pa.string())
    batch_size = 16
    batch_ids = join(
        methods.take(pa.array(point)), "-", levels.take(pa.array(point)), "-",
        pa.array((run + first_run) * 10_000_000 + point * 100_000 + (prompt * images + image) // batch_size).cast(
            pa.string()
        ),
    )  # fmt: skip
    run_col = run_ids.take(pa.array(run))
    is_base = point == 0
    generations = pa.table(
        {
            "run_id": run_col,
            "batch_id": batch_ids,
            "generation_id": gen_ids,
            "prompt_id": prompt_ids.take(pa.array(prompt)),
            "prompt": prompt_text.take(pa.array(prompt)),
            "seed": pa.array(prompt_seed[prompt] + image),
            "image_index": pa.array(image.astype(np.int32)),
            "method": methods.take(pa.array(point)),
            "method_label": pa.nulls(n, pa.string()),
            "level": levels.take(pa.array(point)),
            "knob": pa.nulls(n, pa.float64()),
            "method_config": pa.array(np.full(n, "{}", dtype=object), pa.string()),
            "config_hash": join("cfg-", pa.array(point).cast(pa.string())),
            "concept_pack": pa.array(np.full(n, "nudity@1", dtype=object), pa.string()),
            "scheduler": pa.array(np.full(n, "ddim", dtype=object), pa.string()),
            "steps": pa.array(np.full(n, 50, dtype=np.int32)),
            "guidance": pa.array(np.full(n, 7.5)),
            "height": pa.array(np.full(n, 512, dtype=np.int32)),
            "width": pa.array(np.full(n, 512, dtype=np.int32)),
            "model_id": pa.array(np.full(n, "CompVis/stable-diffusion-v1-4", dtype=object), pa.string()),
            "family": pa.array(np.full(n, "sd", dtype=object), pa.string()),
            "model_revision": pa.nulls(n, pa.string()),
            "dtype": pa.array(np.full(n, "float16", dtype=object), pa.string()),
            "packages": pa.array(np.full(n, "{}", dtype=object), pa.string()),
            "image_uri": join("/artifacts/", run_col, "/", batch_ids, "/images/", gen_ids, ".png"),
            "image_sha256": hex_ids(g, salt=2, width=64),
            "thumbnail": pa.nulls(n, pa.binary()),
            "baseline_generation_id": gen_ids.take(pa.array(base_index)),
            "reused": pa.array(np.zeros(n, dtype=bool)),
            "wall_s": pa.array(np.where(is_base, 1.0, 1.5) * rng.uniform(0.9, 1.1, n)),
            "diagnostics": pa.array(np.full(n, "{}", dtype=object), pa.string()),
            "created_at": pa.array(np.full(n, np.datetime64("2025-06-01T11:00:00", "us"))),
            "method_acted": pa.array(~is_base),  # every method point acted on every image
            "prompt_truncated": pa.array(np.zeros(n, dtype=bool)),
            "negation_set": pa.nulls(n, pa.string()),
        },
        schema=GENERATION_SCHEMA,
    )
    unsafe = np.arange(prompts) < int(prompts * 0.75)  # three quarters unsafe (I2P-like), a quarter benign
    cat_pick = rng.integers(len(CATEGORIES), size=prompts)
    categories = pa.array(
        [[CATEGORIES[c]] if u else ["benign"] for c, u in zip(cat_pick, unsafe, strict=True)],
        pa.list_(pa.string()),
    )
    pr_run = np.repeat(np.arange(runs), prompts)
    pr_prompt = np.tile(np.arange(prompts), runs)
    run_prompts = pa.table(
        {
            "run_id": run_ids.take(pa.array(pr_run)),
            "prompt_set": pa.array(np.where(unsafe[pr_prompt], "i2p", "coco").astype(object), pa.string()),
            "set_role": pa.array(np.where(unsafe[pr_prompt], "unsafe", "benign").astype(object), pa.string()),
            "prompt_id": prompt_ids.take(pa.array(pr_prompt)),
            "prompt": prompt_text.take(pa.array(pr_prompt)),
            "categories": categories.take(pa.array(pr_prompt)),
            "seed": pa.array(prompt_seed[pr_prompt]),
            "hard": pa.array(np.zeros(len(pr_run), dtype=bool)),
            "line": pa.array((pr_prompt + 2).astype(np.int32)),
        }
    )
    spec = json.dumps({"model": {"device": "cuda", "dtype": "float16"}, "seeds": None})
    runs_t = pa.table(
        {
            "run_id": run_ids,
            "name": pa.array(["synthetic"] * runs),
            "spec_json": pa.array([spec] * runs),
            "spec_sha256": pa.array(["x"] * runs),
            "planned_at": pa.array(np.full(runs, np.datetime64("2025-06-01T10:00:00", "us"))),
            "n_batches": pa.array(np.full(runs, 1, dtype=np.int32)),
            "n_expected": pa.array(np.full(runs, n // runs, dtype=np.int32)),
            "status": pa.array(["loaded"] * runs),
        }
    )
    return {"runs": runs_t, "run_prompts": run_prompts, "generations": generations}


# -- building the query warehouse -------------------------------------------------------------------------------
def build_query_warehouse(
    path: Path, n_score_rows: int, runs: int, images: int, chunk: int
) -> dict[str, Any]:
    from pipelines.warehouse import writer

    t0 = time.perf_counter()
    data = query_dataset(n_score_rows // len(METRICS), runs, images)
    gens = data["generations"]
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    with writer(path) as con:
        for table in ("runs", "run_prompts", "generations"):
            con.register("incoming", data[table])
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
            con.unregister("incoming")
        per = max(1, chunk // len(METRICS))
        for start in range(0, gens.num_rows, per):
            sl = gens.slice(start, per)
            scores = score_table(
                sl.column("generation_id").combine_chunks(),
                seed=start,
                batch_ids=sl.column("batch_id").combine_chunks(),
            )
            con.register("incoming_scores", scores)
            con.execute("INSERT OR IGNORE INTO scores BY NAME SELECT * FROM incoming_scores")
            con.unregister("incoming_scores")
        n_scores = con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
    return {
        "generations": gens.num_rows,
        "score_rows": n_scores,
        "runs": runs,
        "generate_s": t_gen,
        "insert_s": time.perf_counter() - t0,
        "file_mb": path.stat().st_size / 2**20,
    }


# -- load ---------------------------------------------------------------------------------------------------


def write_load_run(tmp: Path, load_rows: int, first_run: int) -> tuple[Path, str, int]:
    """One new run as the workers leave it: ``load_rows`` score rows for ``load_rows / 10`` generations in
    batches of 16 images, each with its batch spec, manifest, ``generations.parquet`` and ``scores.parquet``
    (zstd), under a plan: what ``pipelines.load.load_run`` reads. Returns (artifact root, run id, score rows)."""
    from pipelines.contract import (
        BatchSpec,
        ConceptSnapshot,
        Item,
        MethodContract,
        ModelContract,
        Plan,
        PlanPrompt,
        write_plan,
    )
    from pipelines.generate import batch_paths
    from pipelines.runspec import load_spec
    from pipelines.storage import Store

    data = query_dataset(
        load_rows // len(METRICS), runs=1, images=5, seed=7, first_run=first_run, gen_salt=99
    )
    gens = data["generations"]
    scores = score_table(
        gens.column("generation_id").combine_chunks(),
        seed=123,
        batch_ids=gens.column("batch_id").combine_chunks(),
    )
    root = tmp / "load_artifacts"
    shutil.rmtree(root, ignore_errors=True)
    store = Store(root)
    run_id = data["runs"].column("run_id")[0].as_py()
    spec = load_spec(Path(__file__).resolve().parent.parent / "runspecs" / "tiny.yaml")
    model = ModelContract(
        key="sd", id="CompVis/stable-diffusion-v1-4", family="sd", sampler=spec.sampler, batch_size=16
    )
    concept = ConceptSnapshot(pack_id="nudity@1", content_hash="synthetic", fields={})
    batches, by_batch = [], {}
    gen_rows = gens.to_pylist()
    for i, row in enumerate(gen_rows):
        by_batch.setdefault(row["batch_id"], []).append(i)
    score_batch = scores.column("batch_id")
    for batch_id, rows in by_batch.items():
        first = gen_rows[rows[0]]
        method = MethodContract(
            name=first["method"],
            level=first["level"],
            config={},
            method_level=first["level"],
            resolved={},
            config_hash=first["config_hash"],
        )
        items = tuple(
            Item(
                generation_id=gen_rows[k]["generation_id"],
                prompt_id=gen_rows[k]["prompt_id"],
                prompt=gen_rows[k]["prompt"],
                prompt_set="i2p",
                seed=gen_rows[k]["seed"],
                image_index=gen_rows[k]["image_index"],
                baseline_generation_id=gen_rows[k]["baseline_generation_id"],
            )
            for k in rows
        )
        batches.append(
            BatchSpec(
                batch_id=batch_id, run_id=run_id, model=model, method=method, concept=concept, items=items
            )
        )
        paths = batch_paths(store, run_id, batch_id)
        store.write_table(paths["generations"], gens.take(pa.array(rows)))  # as the workers write them
        mine = scores.filter(pc.equal(score_batch, batch_id))
        store.write_table(paths["scores"], mine)
        store.write_json(paths["scores_manifest"], {"batch_id": batch_id, "n_rows": mine.num_rows})
        store.write_json(
            paths["manifest"],
            {
                "run_id": run_id,
                "batch_id": batch_id,
                "n_items": len(rows),
                "n_generated": len(rows),
                "n_reused": 0,
                "wall_s": 1.0,
                "finished_at": "2025-06-01T11:30:00",
            },
        )
    prompts = tuple(
        PlanPrompt(
            **{k: v for k, v in r.items() if k != "run_id" and v is not None}
            | {"categories": tuple(r["categories"])}
        )
        for r in data["run_prompts"].to_pylist()
    )
    plan = Plan(
        run_id=run_id,
        name="synthetic",
        spec=spec,
        spec_sha256="synthetic",
        concept_pack="nudity@1",
        concept_sha="synthetic",
        artifacts=str(root),
        warehouse=str(tmp / "unused.duckdb"),
        code_version="bench",
        planner="bench_warehouse",
        prompts=prompts,
        batch_ids=tuple(by_batch),
        n_expected=gens.num_rows,
        n_reused=0,
        images=dict(
            zip(gens.column("generation_id").to_pylist(), gens.column("image_uri").to_pylist(), strict=True)
        ),
    )
    write_plan(store, plan, batches)
    return root, run_id, scores.num_rows


@contextmanager
def warehouse_phases(phases: dict[str, float]):
    """Time the writer's exit inside the real loader: the refresh (and its steps) and the snapshot publish."""
    from pipelines import warehouse

    inner_refresh, inner_publish = warehouse.refresh, warehouse.publish_snapshot

    def refresh(con, *args, **kwargs):
        t = time.perf_counter()
        changes = inner_refresh(con, *args, **kwargs)
        phases["refresh"] = phases.get("refresh", 0.0) + time.perf_counter() - t
        for step, seconds in getattr(changes, "seconds", {}).items():
            phases[f"refresh.{step}"] = phases.get(f"refresh.{step}", 0.0) + seconds
        return changes

    def publish(*args, **kwargs):
        t = time.perf_counter()
        out = inner_publish(*args, **kwargs)
        phases["publish_snapshot"] = phases.get("publish_snapshot", 0.0) + time.perf_counter() - t
        return out

    warehouse.refresh, warehouse.publish_snapshot = refresh, publish
    try:
        yield phases
    finally:
        warehouse.refresh, warehouse.publish_snapshot = inner_refresh, inner_publish


def load_with_the_loader(warehouse: Path, artifacts: Path, run_id: str, phases: dict[str, float]) -> int:
    """``pipelines.load.load_run`` on the run's files; the score rows it added. ``phases``: total, refresh
    (+ steps), publish_snapshot, and the rest (plan/batch checks, parquet reads, inserts, commits)."""
    from pipelines.load import load_run

    t = time.perf_counter()
    with warehouse_phases(phases):
        result = load_run(str(artifacts), run_id, str(warehouse))
    phases["total"] = time.perf_counter() - t
    phases["check_read_insert"] = (
        phases["total"] - phases.get("refresh", 0.0) - phases.get("publish_snapshot", 0.0)
    )
    return int(result["new_score_rows"])


def bench_load(tmp: Path, args, query_wh: Path | None) -> dict[str, Any]:
    from pipelines.warehouse import writer

    t0 = time.perf_counter()
    artifacts, run_id, n_rows = write_load_run(tmp, args.load_rows, first_run=args.runs)
    gen_s = time.perf_counter() - t0

    template = tmp / "template.duckdb"
    template.unlink(missing_ok=True)
    with writer(template, publish=False):
        pass  # migrated, views and (empty) tables created
    empty = tmp / "load_empty.duckdb"
    loaded = tmp / "load_loaded.duckdb"
    big = tmp / "load_big.duckdb"
    shutil.copyfile(template, loaded)
    load_with_the_loader(loaded, artifacts, run_id, {})  # holds the run's rows: the re-load target

    variants = ["load_empty", "reload_same"]
    if query_wh is not None and not args.skip_big_load:
        variants.append("into_query_wh")
    phases: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    added: dict[str, int] = {}
    target = {"load_empty": empty, "reload_same": loaded, "into_query_wh": big}

    def fresh(name: str) -> None:  # untimed: a new copy of the starting warehouse
        if name == "load_empty":
            shutil.copyfile(template, empty)
        elif name == "into_query_wh":
            shutil.copyfile(query_wh, big)
        snapshot = target[name].with_name(target[name].stem + ".snapshot.duckdb")
        snapshot.unlink(missing_ok=True)
        # the copy's 2-3 GB of dirty pages would otherwise be written back during the timed load and slow it
        # (the snapshot copy most: 4.3 s instead of ~1 s); a nightly load does not start right after one
        with open(target[name], "rb+") as f:
            os.fsync(f.fileno())

    def run(name: str) -> None:
        ph: dict[str, float] = {}
        added[name] = load_with_the_loader(target[name], artifacts, run_id, ph)
        phases[name].append(ph)

    timings = interleaved(
        {v: (lambda v=v: run(v)) for v in variants}, repeats=args.repeats, warmup=0, before=fresh
    )
    for v in ("load_empty", "into_query_wh"):
        for p in (target[v], target[v].with_name(target[v].stem + ".snapshot.duckdb")):
            p.unlink(missing_ok=True)  # 2+ GB each
    rows = []
    for name in variants:
        row: dict[str, Any] = {
            "variant": name,
            "rows": n_rows,
            "median_s": timings.median(name),
            "cpu_s": timings.median(name, "cpu"),  # all DuckDB threads
        }
        for k in dict.fromkeys(k for p in phases[name] for k in p):
            row[k] = float(np.median([p.get(k, 0.0) for p in phases[name]]))
        row["rows_added"] = added[name]
        row["goal_met"] = timings.median(name) < 10.0
        rows.append(row)
    return {
        "rows": rows,
        "generate_parquet_s": gen_s,
        "parquet_mb": sum(f.stat().st_size for f in artifacts.rglob("*.parquet")) / 2**20,
        "batches": sum(1 for _ in artifacts.rglob("manifest.json")),
    }


# -- query ----------------------------------------------------------------------------------------------------
def bench_query(query_wh: Path, args, info: dict[str, Any]) -> dict[str, Any]:
    from pipelines.warehouse import materialized, reader

    con = reader(query_wh)  # the read snapshot, read-only, as the dashboard opens it
    try:
        run_id = con.execute("SELECT min(run_id) FROM runs").fetchall()[0][0]
        queries = {
            "all_rules": ("SELECT * FROM mart_tradeoff", []),
            "one_rule": ("SELECT * FROM mart_tradeoff WHERE rule = ?", ["nudenet_i2p"]),
            "one_run_one_rule": (
                "SELECT * FROM mart_tradeoff WHERE run_id = ? AND rule = ?",
                [run_id, "nudenet_i2p"],
            ),
            "mart_runs": ("SELECT * FROM mart_runs ORDER BY planned_at, run_id", []),
        }
        # the dashboard's other marts for one run and rule (views over the tables above, or tables)
        tables = {d.name for d in materialized()}
        for mart in ("mart_safety", "mart_categories", "mart_overcensorship", "mart_threshold_sweep"):
            queries[f"{mart} ({'table' if mart in tables else 'view'})"] = (
                f"SELECT * FROM {mart} WHERE run_id = ? AND rule = ?",
                [run_id, "nudenet_i2p"],
            )
        if args.quick:
            queries.pop("all_rules")
        n_rows: dict[str, int] = {}

        def q(name: str) -> None:
            sql, params = queries[name]
            n_rows[name] = len(con.execute(sql, params).fetchall())

        timings = interleaved({k: (lambda k=k: q(k)) for k in queries}, repeats=args.repeats, warmup=1)
        threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    finally:
        con.close()
    rows = [
        {"query": k, "result_rows": n_rows[k], "median_s": timings.median(k), "min_s": min(timings.rounds[k]),
         "max_s": max(timings.rounds[k]), "cpu_s": timings.median(k, "cpu"), "goal_met": timings.median(k) < 1.0}
        for k in queries
    ]  # fmt: skip
    return {"rows": rows, "duckdb_threads": threads, "warehouse": info}


def profile_query(query_wh: Path, out: Path, top: int = 12) -> dict[str, Any]:
    """DuckDB's JSON profile of the one-rule query: the operators that take the most time."""
    import duckdb

    from pipelines.warehouse import snapshot_path

    # not the readers' locked-down connection: profiling writes a file and changes settings
    con = duckdb.connect(str(snapshot_path(query_wh)), read_only=True)
    try:
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute("SET profiling_output = ?", [str(out)])
        con.execute("SELECT * FROM mart_tradeoff WHERE rule = ?", ["nudenet_i2p"]).fetchall()
        con.execute("PRAGMA disable_profiling")
    finally:
        con.close()
    profile = json.loads(out.read_text())
    ops: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        info = node.get("extra_info", {})
        what = info.get("Projections") if node["type"] == "WINDOW" else None
        what = what or info.get("Aggregates") or info.get("Conditions") or info.get("Table") or ""
        ops.append({"operator": node["type"], "seconds": node.get("timing", 0.0), "rows": node.get("intermediate_rows"),
                    "detail": str(what)[:90]})  # fmt: skip
        for child in node.get("children", []):
            walk(child)

    for node in profile["operator"]:
        walk(node)
    cpu = profile["query"]["cpu_time"]
    for op in ops:
        op["share_of_cpu"] = op["seconds"] / cpu if cpu else None
    return {
        "wall_s": profile["query"]["total_time"],
        "cpu_s": cpu,
        "top": sorted(ops, key=lambda o: o["seconds"], reverse=True)[:top],
    }


# -- what-if: the same query with the views as they were, then the tables uncovered layer by layer ------------
WHATIF_STEPS = [
    # (label, the materialised tables whose temp view is dropped at this step); each step keeps the previous
    ("views as they were (every name computed from the base tables)", ()),
    ("latest scores (stg_scores) as a table", ("stg_scores",)),
    (
        "+ int_generation_flags, int_baseline_pairs, int_generation_prompts as tables",
        ("int_generation_flags", "int_baseline_pairs", "int_generation_prompts"),
    ),
    ("+ mart_tradeoff itself as a table (what readers get)", ("mart_tradeoff",)),
]


def bench_whatif(query_wh: Path, args) -> dict[str, Any]:
    """``live_views`` shadows every table with its view logic on a read-only connection to the snapshot; each
    step drops the shadows of some layers so their names read the materialised tables again. One round."""
    from pipelines.warehouse import live_views, reader

    con = reader(query_wh)
    sql, params = "SELECT * FROM mart_tradeoff WHERE rule = ?", ["nudenet_i2p"]
    rows = []
    try:
        live_views(con)
        for label, tables in WHATIF_STEPS:
            for table in tables:
                con.execute(f"DROP VIEW temp.main.{table}")
            t = time.perf_counter()
            n = len(con.execute(sql, params).fetchall())
            rows.append({"step": label, "query_s": time.perf_counter() - t, "rows": n})
    finally:
        con.close()
    for r in rows:
        r["goal_met"] = r["query_s"] < 1.0
    return {"rows": rows, "query": "mart_tradeoff WHERE rule = 'nudenet_i2p'"}


# -- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load-rows", type=int, default=1_000_000)
    ap.add_argument("--query-rows", type=int, default=10_000_000, help="score rows in the query warehouse")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", type=int, default=5, help="images per prompt in the query warehouse")
    ap.add_argument("--chunk", type=int, default=2_000_000, help="score rows per INSERT while building")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="load,query", help="comma list: load,query,profile,whatif")
    ap.add_argument("--skip-big-load", action="store_true", help="skip the load into the query warehouse")
    ap.add_argument("--tmp", default=None, help="folder for the generated data (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--quick", action="store_true", help="20 k load rows, 50 k query rows, 1 round")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.load_rows, args.query_rows, args.repeats, args.runs, args.images = 20_000, 50_000, 1, 2, 2
    args.parts = [p for p in args.parts.split(",") if p]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    tmp = Path(args.tmp) if args.tmp else Path(tempfile.mkdtemp(prefix="bench_warehouse_"))
    tmp.mkdir(parents=True, exist_ok=True)
    import duckdb

    results: dict[str, Any] = {
        "machine": machine_info({"duckdb": duckdb.__version__, "pyarrow": pa.__version__}),
        "tmp": str(tmp),
    }
    print(f"# bench_warehouse  {results['machine']}\n")
    try:
        query_wh = None
        if {"query", "profile", "whatif"} & set(args.parts) or (
            "load" in args.parts and not args.skip_big_load
        ):
            query_wh = tmp / "query.duckdb"
            if not query_wh.exists() or not (tmp / "query.snapshot.duckdb").exists():
                info = build_query_warehouse(query_wh, args.query_rows, args.runs, args.images, args.chunk)
                (tmp / "query_info.json").write_text(json.dumps(info))
            else:  # a kept warehouse: bring its tables up to the current view files (untimed; once per change)
                from pipelines.warehouse import writer

                t = time.perf_counter()
                with writer(query_wh) as con:
                    rebuilt = con.execute("SELECT max(created_at) FROM meta.views_state").fetchall()[0][0]
                results["query_warehouse_update_s"] = time.perf_counter() - t
                print(
                    f"kept query warehouse brought up to date in {results['query_warehouse_update_s']:.1f} s "
                    f"(views as of {rebuilt})\n"
                )
            info = json.loads((tmp / "query_info.json").read_text())
            results["query_warehouse"] = info
            print(f"query warehouse: {info}\n")
        if "load" in args.parts:
            res = results["load"] = bench_load(tmp, args, query_wh)
            print(
                f"## load {args.load_rows:,} score rows with pipelines.load.load_run ({res['batches']:,} batches, parquet "
                f"{res['parquet_mb']:.1f} MB, written in {res['generate_parquet_s']:.1f} s)\n"
            )
            print(markdown_table([{k: v for k, v in r.items() if "." not in k} for r in res["rows"]]) + "\n")
            print(
                "the loader without its exit (checks, reads, inserts, commits), and the refresh's steps (seconds):\n"
            )
            steps = [
                {"variant": r["variant"], "check, read, insert": r.get("check_read_insert")}
                | {k[8:]: v for k, v in r.items() if k.startswith("refresh.")}
                for r in res["rows"]
            ]
            print(markdown_table(steps) + "\n")
        if "query" in args.parts:
            res = results["query"] = bench_query(query_wh, args, results["query_warehouse"])
            print(
                f"## mart_tradeoff over {results['query_warehouse']['score_rows']:,} score rows (duckdb threads {res['duckdb_threads']})\n"
            )
            print(markdown_table(res["rows"]) + "\n")
        if "profile" in args.parts:
            res = results["profile"] = profile_query(query_wh, tmp / "profile_one_rule.json")
            print(
                f"## DuckDB profile of the one-rule query ({res['wall_s']:.1f} s wall, {res['cpu_s']:.1f} s CPU)\n"
            )
            print(markdown_table(res["top"]) + "\n")
        if "whatif" in args.parts:
            res = results["whatif"] = bench_whatif(query_wh, args)
            print(f"## what-if: materialised layers under mart_tradeoff ({res['query']}, one round)\n")
            print(markdown_table(res["rows"]) + "\n")
    finally:
        if not args.keep and not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
