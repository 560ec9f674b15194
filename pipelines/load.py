"""The only DuckDB writer: ingest a run's finished batches, one transaction per batch.

Loading replaces a batch's rows by batch id (generations) and adds scores that are not there yet, so
loading twice changes nothing. A batch without ``manifest.json`` is not finished and is left for later.

The batch files are not trusted: which run and batch rows belong to, and which images a batch holds, come
from the plan (``plan.json``: the run and its batch ids; the batch spec: its items). The manifest and the
parquet files must agree with them (run id, batch id, generation ids, row count, method point), else the
batch is refused with one line naming it and the file, before any of its rows is written.
When the writer closes it refreshes the materialised tables (``mart_tradeoff`` and the layers under it) for
the images and runs that changed, then publishes the read snapshot (``pipelines.warehouse``).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contract import BatchSpec, Plan, read_batch, read_plan
from pipelines.generate import batch_paths
from pipelines.queries import query
from pipelines.storage import Store
from pipelines.warehouse import WarehouseError, now, writer

# the score insert by on_conflict: plain (the usual case, ~2x faster) or skipping rows already there
SCORE_INSERTS = {"": "load/insert_scores", "OR IGNORE": "load/insert_scores_or_ignore"}


class BatchRefused(WarehouseError):
    """A batch's files disagree with the plan: nothing of the batch is written."""


RUN_PROMPT_COLUMNS = [
    "run_id",
    "prompt_set",
    "set_role",
    "prompt_id",
    "prompt",
    "categories",
    "seed",
    "hard",
    "guidance",
    "source_file",
    "source_sha256",
    "line",
    "case_number",
    "pair_id",
    "pair_role",
    "meta",
]


def _run_row(plan: Plan) -> list[Any]:
    return [
        plan.run_id,
        plan.name,
        plan.tag,
        json.dumps(plan.spec.model_dump(mode="json"), sort_keys=True),
        plan.spec_sha256,
        plan.concept_pack,
        plan.concept_sha,
        ", ".join(m.id for m in plan.spec.all_models),
        plan.code_version,
        now(),
        len(plan.batch_ids),
        plan.n_expected,
    ]


def load_run(artifacts: str, run_id: str, warehouse: str | None = None) -> dict[str, Any]:
    """Load every finished batch of a run; return counts (small dict, safe for XCom)."""
    store = Store(artifacts)
    plan = read_plan(store, run_id)
    if plan.run_id != run_id:
        raise BatchRefused(
            f"refusing run {run_id}: {store.path(run_id, 'plan.json')} is the plan of run {plan.run_id!r}"
        )
    warehouse = warehouse or plan.warehouse
    loaded, pending, score_rows = 0, [], 0
    # Every finished batch is checked against the plan before anything is written (its identity columns
    # only: cheap), so a refused batch leaves the warehouse exactly as it was.
    for batch_id in plan.batch_ids:
        paths = batch_paths(store, run_id, batch_id)
        if store.exists(paths["manifest"]):
            check_batch(run_id, batch_id, paths, *_identity(store, run_id, batch_id, paths))
    with writer(warehouse) as con:
        con.begin()
        con.execute(query("load/upsert_run"), _run_row(plan))
        con.execute(query("load/delete_run_prompts"), [plan.run_id])
        prompts = [p.model_dump() | {"run_id": run_id} for p in plan.prompts]
        if prompts:
            table = pa.Table.from_pylist([{c: p.get(c) for c in RUN_PROMPT_COLUMNS} for p in prompts])
            con.register("incoming_prompts", table)
            con.execute(query("load/insert_run_prompts"))
            con.unregister("incoming_prompts")
        con.commit()

        # One scan for the batches already in the warehouse, instead of a delete (a scan of every generation)
        # per batch: only those have rows to replace. We are the only writer, so the set holds for this load.
        stored = {r[0] for r in con.execute(query("load/stored_batches"), [list(plan.batch_ids)]).fetchall()}
        for batch_id in plan.batch_ids:
            paths = batch_paths(store, run_id, batch_id)
            if not store.exists(paths["manifest"]):
                pending.append(batch_id)
                continue
            manifest = store.read_manifest(paths["manifest"])
            batch = read_batch(store, run_id, batch_id)
            generations = store.read_table(paths["generations"])
            scores = store.read_table(paths["scores"]) if store.exists(paths["scores_manifest"]) else None
            check_batch(
                run_id, batch_id, paths, batch, manifest, generations, scores
            )  # as read for the write
            args = (con, run_id, batch_id, batch, manifest, generations, scores, batch_id in stored)
            try:
                # New score rows are the usual case: a plain INSERT (the key still checked) is ~2x faster than
                # INSERT OR IGNORE into a 10 M-row key. Any row already there (a re-load, a reused image
                # scored before) fails the whole batch, which is then redone ignoring those rows.
                score_rows += _write_batch(*args, on_conflict="")
            except duckdb.ConstraintException:
                score_rows += _write_batch(*args, on_conflict="OR IGNORE")
            loaded += 1
        labels = merge_reviewer_labels(con, warehouse)
        if not pending:
            con.execute(query("load/mark_loaded"), [now(), run_id])
        counts = con.execute(query("load/run_counts"), [run_id]).fetchall()[0]
    return {
        "run_id": run_id,
        "warehouse": str(warehouse),
        "batches_loaded": loaded,
        "batches_pending": len(pending),
        "generations": counts[0],
        "reused": counts[1],
        "new_score_rows": score_rows,
        "labels_merged": labels,
    }


IDENTITY_COLUMNS = ("run_id", "batch_id", "generation_id", "method", "level", "config_hash")


def _identity(store: Store, run_id: str, batch_id: str, paths: dict[str, str]) -> tuple:
    """(batch spec, manifest, generations, scores) with only the columns ``check_batch`` reads."""
    scores = (
        store.read_table(paths["scores"], ("batch_id", "generation_id"))
        if store.exists(paths["scores_manifest"])
        else None
    )
    return (
        read_batch(store, run_id, batch_id),
        store.read_manifest(paths["manifest"]),
        store.read_table(paths["generations"], IDENTITY_COLUMNS),
        scores,
    )


def _distinct(table: pa.Table, column: str) -> list[Any]:
    return pc.unique(table.column(column)).to_pylist() if column in table.column_names else [None]


def check_batch(
    run_id: str,
    batch_id: str,
    paths: dict[str, str],
    batch: BatchSpec,
    manifest: dict[str, Any],
    generations: pa.Table,
    scores: pa.Table | None,
) -> None:
    """Refuse (``BatchRefused``, one line) a batch whose files disagree with the plan.

    ``run_id`` and ``batch_id`` are the plan's; the batch spec (written with the plan) says which images the
    batch holds. The manifest, ``generations.parquet`` and ``scores.parquet`` must name the same run and batch
    and exactly those images: rows of another run, a foreign batch id or a short parquet never get in."""

    def refuse(path: str, what: str) -> None:
        raise BatchRefused(f"refusing batch {batch_id} of run {run_id}: {path}: {what}")

    for key, want in (("run_id", run_id), ("batch_id", batch_id)):
        if getattr(batch, key) != want:
            refuse(paths["spec"], f"{key} is {getattr(batch, key)!r}, the plan says {want!r}")
    items = [i.generation_id for i in batch.items]
    for key, want in (("run_id", run_id), ("batch_id", batch_id), ("n_items", len(items))):
        if manifest.get(key) != want:
            refuse(paths["manifest"], f"{key} is {manifest.get(key)!r}, the plan says {want!r}")

    path = paths["generations"]
    for key, want in (("run_id", run_id), ("batch_id", batch_id)):
        found = [v for v in _distinct(generations, key) if v != want]
        if found:
            refuse(path, f"holds rows with {key} {found[0]!r}, the plan says {want!r}")
    planned = {
        "method": batch.method.name,
        "level": batch.method.level,
        "config_hash": batch.method.config_hash,
    }
    for key, want in planned.items():
        found = [v for v in _distinct(generations, key) if v != want]
        if found:
            refuse(path, f"holds rows with {key} {found[0]!r}, the batch spec says {want!r}")
    ids = (
        generations.column("generation_id").to_pylist() if "generation_id" in generations.column_names else []
    )
    if len(ids) != len(items) or set(ids) != set(items):
        problems = [
            f"{n} {what}"
            for n, what in (
                (len(set(items) - set(ids)), "of the batch's images missing"),
                (len(set(ids) - set(items)), "images not in the batch"),
                (len(ids) - len(set(ids)), "duplicate rows"),
            )
            if n
        ]
        refuse(path, f"{len(ids)} rows for the batch's {len(items)} images ({'; '.join(problems)})")

    if scores is not None and scores.num_rows:
        found = [v for v in _distinct(scores, "batch_id") if v != batch_id]
        if found:
            refuse(paths["scores"], f"holds rows with batch_id {found[0]!r}, the plan says {batch_id!r}")
        extra = set(_distinct(scores, "generation_id")) - set(items)
        if extra:
            refuse(
                paths["scores"],
                f"scores {len(extra)} images not in the batch, e.g. {sorted(extra, key=str)[0]!r}",
            )


def _write_batch(
    con,
    run_id: str,
    batch_id: str,
    batch: BatchSpec,
    manifest: dict[str, Any],
    generations: pa.Table,
    scores: pa.Table | None,
    stored: bool,
    on_conflict: str,
) -> int:
    """One batch in one transaction: its generations and batch row replaced, its score rows added.

    ``stored``: the warehouse may already hold generations of this batch (else their delete is skipped).
    ``on_conflict``: "" or "OR IGNORE" for the score insert. Returns the score rows added."""
    added = 0
    cost = manifest.get("efficiency") or {}
    row = {
        "batch_id": batch_id,
        "run_id": run_id,
        "method": batch.method.name,
        "method_label": batch.method.label,
        "level": batch.method.level,
        "knob": batch.method.knob,
        "method_config": json.dumps(batch.method.resolved, sort_keys=True),
        "config_hash": batch.method.config_hash,
        "n_items": manifest["n_items"],
        "n_generated": manifest["n_generated"],
        "n_reused": manifest["n_reused"],
        "wall_s": manifest["wall_s"],
        "worker": manifest.get("worker"),
        "finished_at": manifest["finished_at"],
        "loaded_at": now(),
        **{  # pipelines/efficiency.py; absent in older manifests
            key: cost.get(key)
            for key in (
                "unet_rows_per_step",
                "unet_calls_per_step",
                "peak_mem_bytes",
                "peak_mem_device",
                "sample_s",
            )
        },
    }
    # registered outside the transaction: a failed INSERT aborts it, and an aborted transaction refuses even
    # an unregister (which would hide the constraint error from the caller's retry). The batch row goes in by
    # name, not position (later migrations add columns), from a one-row table.
    con.register("incoming_batch", pa.Table.from_pylist([row]))
    con.register("incoming_generations", generations)
    if scores is not None:
        con.register("incoming_scores", scores)
    try:
        con.begin()
        try:
            if stored:
                con.execute(query("load/delete_batch_generations"), [batch_id])
            con.execute(query("load/insert_generations"))
            con.execute(query("load/delete_batch"), [batch_id])
            con.execute(query("load/insert_batch"))
            if scores is not None and scores.num_rows:
                before = con.execute(query("load/count_scores")).fetchall()[0][0]
                # in key order (see the query file): random content-hash ids cost ~1.5x to index otherwise
                con.execute(query(SCORE_INSERTS[on_conflict]))
                added = con.execute(query("load/count_scores")).fetchall()[0][0] - before
            con.commit()
        except Exception:
            con.rollback()
            raise
    finally:
        con.unregister("incoming_batch")
        con.unregister("incoming_generations")
        if scores is not None:
            con.unregister("incoming_scores")
    return added


def merge_reviewer_labels(con, warehouse: str) -> int:
    """Reviewer labels arrive as small files beside the warehouse (the dashboard's write path, which never
    opens the warehouse); the single writer folds them into ``labels`` on each load, idempotently."""
    from pipelines.labels import labels_dir, merge_labels

    return merge_labels(con, labels_dir(warehouse))["merged"]
