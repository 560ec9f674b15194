"""The only DuckDB writer: ingest a run's finished batches, one transaction per batch.

Loading replaces a batch's rows by batch id (generations) and adds scores that are not there yet, so
loading twice changes nothing. A batch without ``manifest.json`` is not finished and is left for later.
When the writer closes it refreshes the materialised tables (``mart_tradeoff`` and the layers under it) for
the images and runs that changed, then publishes the read snapshot (``pipelines.warehouse``).
"""

from __future__ import annotations

import json
from typing import Any

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

        for batch_id in plan["batch_ids"]:
            paths = batch_paths(store, run_id, batch_id)
            if not store.exists(paths["manifest"]):
                pending.append(batch_id)
                continue
            manifest = store.read_json(paths["manifest"])
            batch = store.read_json(paths["spec"])
            generations = store.read_table(paths["generations"])
            scores = store.read_table(paths["scores"]) if store.exists(paths["scores_manifest"]) else None
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM generations WHERE batch_id = ?", [batch_id])
                con.register("incoming_generations", generations)
                con.execute("INSERT INTO generations BY NAME SELECT * FROM incoming_generations")
                con.unregister("incoming_generations")
                con.execute("DELETE FROM batches WHERE batch_id = ?", [batch_id])
                con.execute(
                    "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    ],
                )
                if scores is not None and scores.num_rows:
                    con.register("incoming_scores", scores)
                    before = con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
                    con.execute("INSERT OR IGNORE INTO scores BY NAME SELECT * FROM incoming_scores")
                    score_rows += con.execute("SELECT count(*) FROM scores").fetchall()[0][0] - before
                    con.unregister("incoming_scores")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
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


def merge_reviewer_labels(con, warehouse: str) -> int:
    """Reviewer labels arrive as small files beside the warehouse (the dashboard's write path, which never
    opens the warehouse); the single writer folds them into ``labels`` on each load, idempotently."""
    from pipelines.labels import labels_dir, merge_labels

    return merge_labels(con, labels_dir(warehouse))["merged"]
