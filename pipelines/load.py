"""The only DuckDB writer: ingest a run's finished batches, one transaction per batch.

Loading replaces a batch's rows by batch id (generations) and adds scores that are not there yet, so
loading twice changes nothing. A batch without ``manifest.json`` is not finished and is left for later.
When the writer closes it refreshes the materialised tables (``mart_tradeoff`` and the layers under it) for
the images and runs that changed, then publishes the read snapshot (``pipelines.warehouse``).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.generate import batch_paths
from pipelines.storage import Store
from pipelines.warehouse import now, writer

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


def _run_row(plan: dict[str, Any]) -> list[Any]:
    return [
        plan["run_id"],
        plan["name"],
        plan.get("tag"),
        json.dumps(plan["spec"], sort_keys=True),
        plan["spec_sha256"],
        plan["concept_pack"],
        plan["concept_sha"],
        plan["spec"]["model"]["id"],
        plan["code_version"],
        now(),
        len(plan["batch_ids"]),
        plan["n_expected"],
    ]


def load_run(artifacts: str, run_id: str, warehouse: str | None = None) -> dict[str, Any]:
    """Load every finished batch of a run; return counts (small dict, safe for XCom)."""
    store = Store(artifacts)
    plan = store.read_json(store.path(run_id, "plan.json"))
    warehouse = warehouse or plan["warehouse"]
    loaded, pending, score_rows = 0, [], 0
    with writer(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO runs (run_id, name, tag, spec_json, spec_sha256, concept_pack, concept_sha, model_id, "
            "code_version, planned_at, n_batches, n_expected) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (run_id) DO UPDATE SET n_batches = excluded.n_batches, n_expected = excluded.n_expected",
            _run_row(plan),
        )
        con.execute("DELETE FROM run_prompts WHERE run_id = ?", [plan["run_id"]])
        prompts = [{**p, "run_id": run_id} for p in plan["prompts"]]
        if prompts:
            table = pa.Table.from_pylist([{c: p.get(c) for c in RUN_PROMPT_COLUMNS} for p in prompts])
            con.register("incoming_prompts", table)
            con.execute("INSERT INTO run_prompts BY NAME SELECT * FROM incoming_prompts")
            con.unregister("incoming_prompts")
        con.execute("COMMIT")

        # One scan for the batches already in the warehouse, instead of a delete (a scan of every generation)
        # per batch: only those have rows to replace. We are the only writer, so the set holds for this load.
        stored = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT batch_id FROM generations WHERE list_contains(?, batch_id)",
                [plan["batch_ids"]],
            ).fetchall()
        }
        for batch_id in plan["batch_ids"]:
            paths = batch_paths(store, run_id, batch_id)
            if not store.exists(paths["manifest"]):
                pending.append(batch_id)
                continue
            manifest = store.read_json(paths["manifest"])
            batch = store.read_json(paths["spec"])
            generations = store.read_table(paths["generations"])
            scores = store.read_table(paths["scores"]) if store.exists(paths["scores_manifest"]) else None
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
            con.execute(
                "UPDATE runs SET loaded_at = ?, status = CASE WHEN status = 'planned' THEN 'loaded' ELSE status END "
                "WHERE run_id = ?",
                [now(), run_id],
            )
        counts = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE reused) FROM generations WHERE run_id = ?", [run_id]
        ).fetchall()[0]
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


def _write_batch(
    con,
    run_id: str,
    batch_id: str,
    batch: dict[str, Any],
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
    # registered outside the transaction: a failed INSERT aborts it, and an aborted transaction refuses even
    # an unregister (which would hide the constraint error from the caller's retry)
    con.register("incoming_generations", generations)
    if scores is not None:
        con.register("incoming_scores", scores)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            if stored:
                con.execute("DELETE FROM generations WHERE batch_id = ?", [batch_id])
            con.execute("INSERT INTO generations BY NAME SELECT * FROM incoming_generations")
            con.execute("DELETE FROM batches WHERE batch_id = ?", [batch_id])
            cost = manifest.get("efficiency") or {}  # pipelines/efficiency.py; absent in older manifests
            con.execute(
                "INSERT INTO batches (batch_id, run_id, method, method_label, level, knob, method_config, "
                "config_hash, n_items, n_generated, n_reused, wall_s, worker, finished_at, loaded_at, "
                "unet_rows_per_step, unet_calls_per_step, peak_mem_bytes, peak_mem_device, sample_s) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    batch_id,
                    run_id,
                    batch["method"],
                    batch["method_label"],
                    batch["level"],
                    batch["knob"],
                    json.dumps(batch["method_config"], sort_keys=True),
                    batch["config_hash"],
                    manifest["n_items"],
                    manifest["n_generated"],
                    manifest["n_reused"],
                    manifest["wall_s"],
                    manifest.get("worker"),
                    manifest["finished_at"],
                    now(),
                    cost.get("unet_rows_per_step"),
                    cost.get("unet_calls_per_step"),
                    cost.get("peak_mem_bytes"),
                    cost.get("peak_mem_device"),
                    cost.get("sample_s"),
                ],
            )
            if scores is not None and scores.num_rows:
                before = con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
                # in key order: building and merging the key's index costs 1.6 + 1.2 s this way for 1 M rows
                # into a 10 M-row table, against 2.3 + 2.2 s in arrival order (random content-hash ids)
                con.execute(
                    f"INSERT {on_conflict} INTO scores BY NAME SELECT * FROM incoming_scores "  # noqa: S608
                    "ORDER BY generation_id, scorer, scorer_version, metric"
                )
                added = con.execute("SELECT count(*) FROM scores").fetchall()[0][0] - before
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("incoming_generations")
        if scores is not None:
            con.unregister("incoming_scores")
    return added


def merge_reviewer_labels(con, warehouse: str) -> int:
    """Reviewer labels arrive as small files beside the warehouse (the dashboard's write path, which never
    opens the warehouse); the single writer folds them into ``labels`` on each load, idempotently."""
    from pipelines.labels import labels_dir, merge_labels

    return merge_labels(con, labels_dir(warehouse))["merged"]
