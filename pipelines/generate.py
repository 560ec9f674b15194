"""Generate one batch: sample its images, write PNGs, ``generations.parquet`` and, last, ``manifest.json``.

Idempotent and retry-safe: a batch whose manifest exists is skipped; a batch that crashed half way has no
manifest and is generated again from the start (its partial files are overwritten atomically).

Two steps, so one process can overlap them (``pipelines.runner``): :func:`sample_batch` (the model's work,
in memory) and :func:`write_batch` (CPU work: PNG, thumbnail, parquet, manifest). :func:`generate_batch`,
what the Airflow task calls, runs one after the other.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipelines.contract import BatchSpec, method_for_batch, read_batch
from pipelines.efficiency import BatchCost, measure
from pipelines.storage import (
    ImageMemo,
    Store,
    png_bytes,
    reused_image,
    sha256,
    thumbnail_bytes,
)
from pipelines.warehouse import now

if TYPE_CHECKING:
    from collections.abc import Callable

    from models.components import Components

GENERATION_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("batch_id", pa.string()),
        ("generation_id", pa.string()),
        ("prompt_id", pa.string()),
        ("prompt", pa.string()),
        ("seed", pa.int64()),
        ("image_index", pa.int32()),
        ("method", pa.string()),
        ("method_label", pa.string()),
        ("level", pa.string()),
        ("knob", pa.float64()),
        ("method_config", pa.string()),
        ("config_hash", pa.string()),
        ("concept_pack", pa.string()),
        ("scheduler", pa.string()),
        ("steps", pa.int32()),
        ("guidance", pa.float64()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("model_id", pa.string()),
        ("family", pa.string()),
        ("model_revision", pa.string()),
        ("dtype", pa.string()),
        ("packages", pa.string()),
        ("image_uri", pa.string()),
        ("image_sha256", pa.string()),
        ("thumbnail", pa.binary()),
        ("baseline_generation_id", pa.string()),
        ("reused", pa.bool_()),
        ("wall_s", pa.float64()),
        ("diagnostics", pa.string()),
        ("created_at", pa.timestamp("us")),
        # issue 17: did the method act, was the prompt cut, which negation set (NULL when not known/used)
        ("method_acted", pa.bool_()),
        ("prompt_truncated", pa.bool_()),
        ("negation_set", pa.string()),
    ]
)


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine an image (cached: they cannot change while a
    process runs, and importlib metadata costs ~1 ms a call)."""
    out = {}
    for name in ("torch", "diffusers", "transformers", "safeaudit"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


@lru_cache(maxsize=1)
def cached_components(model_id: str, revision: str | None, dtype: str, device: str) -> Components:
    """One load per worker process and model: tasks in the same process share the components. One model
    at a time: a run with several models (SDXL beside SD3) runs each model's batches together, and two
    full-size models must not both stay in (GPU) memory."""
    from models.components import load_components

    return load_components(model_id, revision=revision, dtype=dtype, device=device)


def batch_paths(store: Store, run_id: str, batch_id: str) -> dict[str, str]:
    d = store.batch_dir(run_id, batch_id)
    return {
        "spec": store.path(run_id, "batches", f"{batch_id}.json"),
        "dir": d,
        "generations": f"{d}/generations.parquet",
        "manifest": f"{d}/manifest.json",
        "scores": f"{d}/scores.parquet",
        "scores_manifest": f"{d}/scores_manifest.json",
    }


_images_written = [0]  # this process's PNGs, for the fault point below
FAULT_ALSO_KILLS: list[int] = []  # a helper process's parent: a crash there is the run's crash


def _fault_point() -> None:
    """Fault injection for crash-resume tests: ``SAFEAUDIT_FAULT=kill-after-images:N`` kills the run
    (SIGKILL, no cleanup: this process and any pid in ``FAULT_ALSO_KILLS``) once this process has written
    N images, counted over all its batches, so a test can kill a run inside its first batch or later."""
    fault = os.environ.get("SAFEAUDIT_FAULT", "")
    if fault.startswith("kill-after-images:") and _images_written[0] >= int(fault.split(":")[1]):
        for pid in FAULT_ALSO_KILLS:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class SampledBatch:
    """A batch whose images are sampled but not yet written: what :func:`write_batch` needs."""

    artifacts: str
    run_id: str
    batch_id: str
    batch: BatchSpec
    images: dict[str, tuple[np.ndarray, dict[str, Any], float]] = field(default_factory=dict)
    sample_s: float = 0.0  # seconds spent sampling (per image: the chunk's time / its size)
    cost: BatchCost = field(default_factory=BatchCost)  # UNet rows per step, peak device memory


def sample_batch(
    artifacts: str,
    run_id: str,
    batch_id: str,
    micro_batch: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> SampledBatch | dict[str, Any]:
    """Sample a batch's new images in memory; return its manifest instead when the batch is already done.

    The method is the one the plan resolved (``contract.method_for_batch``), or the batch is refused
    before any image is made. Nothing is written here, so a crash before :func:`write_batch` leaves no
    trace of the batch.
    """
    store = Store(artifacts)
    paths = batch_paths(store, run_id, batch_id)
    if store.exists(paths["manifest"]):
        manifest = store.read_json(paths["manifest"])
        manifest["skipped"] = True
        return manifest

    batch = read_batch(store, run_id, batch_id)
    out = SampledBatch(artifacts, run_id, batch_id, batch)
    todo = [i for i in batch.items if i.reuse is None]
    if not todo:
        return out
    from models.sampler import Request, SamplerSettings, sample

    method = method_for_batch(batch)  # refuses a batch that cannot run as planned
    m = batch.model
    components = cached_components(m.id, m.revision, m.dtype, m.device)
    settings = SamplerSettings(**m.sampler.model_dump())
    size = micro_batch or m.batch_size
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        t0 = time.perf_counter()
        with measure(components) as used:
            result = sample(
                components, [Request(i.prompt, i.seed) for i in chunk], method=method, settings=settings
            )
        took = time.perf_counter() - t0
        out.sample_s += took
        out.cost.add(used, settings.steps, len(chunk), took)
        for item, image, diag in zip(chunk, result.images, result.diagnostics, strict=True):
            out.images[item.generation_id] = (image, diag, took / len(chunk))
        if progress is not None:
            progress(len(chunk))
    return out


def write_batch(
    sampled: SampledBatch, progress: Callable[[int], object] | None = None, memo: ImageMemo | None = None
) -> dict[str, Any]:
    """Write a sampled batch: PNGs, ``generations.parquet`` and, last, ``manifest.json``.

    ``memo`` (when given) keeps each new image's array under its generation id, so a scorer in this
    process need not decode the PNG just written.
    """
    started = time.perf_counter()
    store = Store(sampled.artifacts)
    run_id, batch_id, batch = sampled.run_id, sampled.batch_id, sampled.batch
    model, method, sampler = batch.model, batch.method, batch.model.sampler
    paths = batch_paths(store, run_id, batch_id)
    results: dict[str, dict[str, Any]] = {}
    for gid, (image, diag, per_image) in sampled.images.items():
        data = png_bytes(image)
        store.write_bytes(f"{paths['dir']}/images/{gid}.png", data)
        uri = store.uri(run_id, batch_id, "images", f"{gid}.png")
        if memo is not None:
            memo.put(gid, uri, image)
        results[gid] = {
            "image_uri": uri,
            "image_sha256": sha256(data),
            "thumbnail": thumbnail_bytes(image),
            "wall_s": per_image,
            "diagnostics": diag,
        }
        _images_written[0] += 1
        _fault_point()

    rows = []
    created = now()
    packages = json.dumps(package_versions(), sort_keys=True)
    method_config = json.dumps(method.resolved, sort_keys=True)
    for item in batch.items:
        gid = item.generation_id
        if item.reuse is not None:
            image = reused_image(item.reuse.image_uri, item.reuse.image_sha256)
            res = {
                **item.reuse.model_dump(),
                "thumbnail": thumbnail_bytes(image),
                "wall_s": 0.0,
                "diagnostics": {},
            }
            if progress is not None:
                progress(1)
        else:
            res = results[gid]
        rows.append(
            {
                "run_id": run_id,
                "batch_id": batch_id,
                "generation_id": gid,
                "prompt_id": item.prompt_id,
                "prompt": item.prompt,
                "seed": item.seed,
                "image_index": item.image_index,
                "method": method.name,
                "method_label": method.label,
                "level": method.level,
                "knob": method.knob,
                "method_config": method_config,
                "config_hash": method.config_hash,
                "concept_pack": batch.concept.pack_id,
                "scheduler": sampler.scheduler,
                "steps": sampler.steps,
                "guidance": sampler.guidance,
                "height": sampler.height,
                "width": sampler.width,
                "model_id": model.id,
                "family": model.family,
                "model_revision": model.revision,
                "dtype": model.dtype,
                "packages": packages,
                "image_uri": res["image_uri"],
                "image_sha256": res["image_sha256"],
                "thumbnail": res["thumbnail"],
                "baseline_generation_id": item.baseline_generation_id,
                "reused": item.reuse is not None,
                "wall_s": res["wall_s"],
                "diagnostics": json.dumps(res["diagnostics"], sort_keys=True, default=float),
                "created_at": created,
                "method_acted": res["diagnostics"].get("acted"),  # reused: NULL, carried over in SQL
                "prompt_truncated": res["diagnostics"].get("prompt_truncated"),
                "negation_set": (method.resolved.get("concept") or {}).get("negation_hash"),
            }
        )
    store.write_table(paths["generations"], pa.Table.from_pylist(rows, schema=GENERATION_SCHEMA))
    manifest = {
        "run_id": run_id,
        "batch_id": batch_id,
        "method": method.name,
        "level": method.level,
        "n_items": len(batch.items),
        "n_generated": len(sampled.images),
        "n_reused": len(batch.items) - len(sampled.images),
        "wall_s": round(sampled.sample_s + time.perf_counter() - started, 4),  # work, not queueing
        "worker": platform.node(),
        "finished_at": now().isoformat(),
        "efficiency": sampled.cost.manifest(),
    }
    store.write_json(paths["manifest"], manifest)  # last: marks the batch done
    manifest["skipped"] = False
    return manifest


def generate_batch(
    artifacts: str,
    run_id: str,
    batch_id: str,
    micro_batch: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> dict[str, Any]:
    """Generate one batch (sample, then write); return its manifest (small dict, safe for XCom)."""
    sampled = sample_batch(artifacts, run_id, batch_id, micro_batch=micro_batch, progress=progress)
    if isinstance(sampled, dict):  # already done
        return sampled
    return write_batch(sampled, progress=progress)
