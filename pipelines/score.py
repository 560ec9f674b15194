"""Score one generated batch: every requested scorer, long rows, written as ``scores.parquet``.

Scores belong to an image (a generation id), not to a run: a (generation, scorer, scorer version) already
in the warehouse is not scored again, so re-running adds nothing, reused images cost nothing, and bumping a
scorer's version adds exactly one new set of rows without regenerating images.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import pyarrow as pa

from pipelines.contract import read_batch, read_plan
from pipelines.generate import batch_paths
from pipelines.queries import query
from pipelines.scorers import ScoreInput, get_scorer, scorer_class
from pipelines.storage import ImageMemo, Store, decode_png, read_uri_bytes
from pipelines.warehouse import now

SCORE_SCHEMA = pa.schema(
    [
        ("generation_id", pa.string()),
        ("scorer", pa.string()),
        ("scorer_version", pa.string()),
        ("model_sha256", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("details", pa.string()),
        ("batch_id", pa.string()),
        ("scored_at", pa.timestamp("us")),
    ]
)


@lru_cache(maxsize=16)
def cached_scorer(name: str):
    """Scorers load their models once per worker process."""
    return get_scorer(name)


def already_scored(
    warehouse: str, generation_ids: list[str], scorers: dict[str, str]
) -> set[tuple[str, str]]:
    """(generation id, scorer) pairs stored at the scorer's current version (read snapshot)."""
    from pipelines.warehouse import WarehouseError, reader

    try:
        con = reader(warehouse)
    except WarehouseError:
        return set()
    try:
        con.register("wanted", pa.table({"generation_id": sorted(set(generation_ids))}))
        con.register("current", pa.table({"scorer": list(scorers), "scorer_version": list(scorers.values())}))
        rows = con.sql(query("score/already_scored")).fetchall()
    finally:
        con.close()
    return {(g, s) for g, s in rows}


def score_batch(
    artifacts: str,
    run_id: str,
    batch_id: str,
    scorers: list[str] | None = None,
    warehouse: str | None = None,
    memo: ImageMemo | None = None,
) -> dict[str, Any]:
    """Score one generated batch. ``memo``: arrays of images this process just wrote (by generation id),
    used instead of decoding their PNGs; anything not in it is read from its file."""
    store = Store(artifacts)
    paths = batch_paths(store, run_id, batch_id)
    plan = read_plan(store, run_id)
    scorers = scorers if scorers is not None else list(plan.spec.scorers)
    versions = {name: scorer_class(name).version for name in scorers}
    if store.exists(paths["scores_manifest"]):
        manifest = store.read_json(paths["scores_manifest"])
        if manifest.get("scorers") == versions:
            return manifest | {"skipped": True}
    if not store.exists(paths["manifest"]):
        raise RuntimeError(f"batch {batch_id} of run {run_id} is not generated yet (no manifest.json)")

    started = time.perf_counter()
    generations = (
        store.read_table(paths["generations"])
        .select(["generation_id", "prompt", "image_uri", "baseline_generation_id"])
        .to_pylist()
    )
    batch = read_batch(store, run_id, batch_id)
    meta = {i.generation_id: i for i in batch.items}
    done = already_scored(warehouse or plan.warehouse, [g["generation_id"] for g in generations], versions)

    images: dict[str, Any] = {}

    def image(generation_id: str, uri: str):
        if generation_id not in images:
            kept = memo.get(generation_id, uri) if memo is not None else None
            images[generation_id] = kept if kept is not None else decode_png(read_uri_bytes(uri))
        return images[generation_id]

    rows = []
    scored_at = now()
    for name in scorers:
        scorer = cached_scorer(name)
        todo = [g for g in generations if (g["generation_id"], name) not in done]
        inputs = []
        for g in todo:
            item = meta.get(g["generation_id"])
            baseline = None
            if "baseline" in scorer.needs:
                base_id = g["baseline_generation_id"]
                base_uri = plan.images.get(base_id)
                baseline = image(base_id, base_uri) if base_uri else None
            inputs.append(
                ScoreInput(
                    generation_id=g["generation_id"],
                    image=image(g["generation_id"], g["image_uri"]),
                    prompt=g["prompt"],
                    categories=list(item.categories) if item else [],
                    baseline_image=baseline,
                    meta=(item.meta if item else None) or {},
                )
            )
        for r in scorer.score(inputs) if inputs else []:
            rows.append({**r.__dict__, "batch_id": batch_id, "scored_at": scored_at})

    store.write_table(paths["scores"], pa.Table.from_pylist(rows, schema=SCORE_SCHEMA))
    manifest = {
        "run_id": run_id,
        "batch_id": batch_id,
        "scorers": versions,
        "n_rows": len(rows),
        "wall_s": round(time.perf_counter() - started, 4),
        "finished_at": now().isoformat(),
    }
    store.write_json(paths["scores_manifest"], manifest)
    return manifest | {"skipped": False}
