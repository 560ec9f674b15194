"""A synthetic, internally consistent run of any size, written with SQL (no images): for timing the suites.

One run: baseline off + negative_prompt off/weak/medium/strong, ``n_prompts`` prompts x 2 seeds per point,
batches of 16, scorers degenerate + fidelity + toy_concept + nudenet (one detection per image), so every
SQL-side expectation passes and has real work to do.
"""

from __future__ import annotations

import json

import pyarrow as pa

from pipelines.expectations.frames import config_hash
from pipelines.warehouse import writer

RUN_ID = "synthetic-000000000000"
POINTS = [("baseline", "off")] + [("negative_prompt", lvl) for lvl in ("off", "weak", "medium", "strong")]
SCORERS = ["degenerate", "fidelity", "toy_concept", "nudenet"]


def _config(method: str, level: str) -> str:
    if method == "baseline":
        cfg = {"concept": {}, "config": {}, "method": "baseline", "method_version": "1"}
    else:
        concept = {} if level == "off" else {"negative_prompt": "red, crimson"}
        cfg = {
            "concept": concept,
            "config": {"keyword_level": None if level == "off" else level, "num_keywords": None},
            "method": method,
            "method_version": "1",
        }
    return json.dumps(cfg, sort_keys=True)


def _metric_rows() -> list[dict]:
    from pipelines.scorers import scorer_class
    from pipelines.scorers.nudenet_classifier import pinned_models

    values = {
        "is_black": 0,
        "is_constant": 0,
        "pixel_std": 40,
        "mean_intensity": 120,
        "ssim": 0.9,
        "psnr": 30,
        "mse": 50,
        "red_fraction": 0.1,
        "red_fraction_all": 0.05,
        "detections": 1,
    }
    detection = json.dumps({"detections": [{"class": "FACE_FEMALE", "score": 0.3, "box": [1, 2, 10, 10]}]})
    rows = []
    for name in SCORERS:
        cls = scorer_class(name)
        sha = pinned_models()[cls.pinned_model]["sha256"] if cls.weights == "pinned" else None
        for metric in cls.metrics:
            if metric in cls.optional_metrics:
                continue
            rows.append(
                {
                    "scorer": name,
                    "scorer_version": cls.version,
                    "model_sha256": sha,
                    "metric": metric,
                    "value": float(values.get(metric, 0.3)),
                    "details": detection if metric == "detections" else "{}",
                }
            )
    return rows


def build(warehouse: str, n_prompts: int = 10_000) -> dict:
    """Write the run; returns its id and sizes."""
    n_items = 2 * n_prompts
    spec = {
        "name": "synthetic",
        "images_per_prompt": 2,
        "seeds": None,
        "default_seed": 42,
        "batch_size": 16,
        "methods": [
            {"name": "baseline", "levels": ["off"], "knob": [], "label": None, "overrides": {}},
            {
                "name": "negative_prompt",
                "levels": ["off", "weak", "medium", "strong"],
                "knob": [],
                "label": None,
                "overrides": {},
            },
        ],
        "scorers": SCORERS,
        "model": {"id": "builtin:tiny"},
    }
    points = pa.Table.from_pylist(
        [
            {
                "method": m,
                "level": lvl,
                "method_config": _config(m, lvl),
                "config_hash": config_hash(_config(m, lvl)),
            }
            for m, lvl in POINTS
        ]
    )
    with writer(warehouse) as con:
        con.register("pts", points)
        con.register("metric_list", pa.Table.from_pylist(_metric_rows()))
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO runs (run_id, name, spec_json, spec_sha256, planned_at, loaded_at, n_batches, n_expected, "
            "status) VALUES (?, 'synthetic', ?, 'x', now(), now(), ?, ?, 'loaded')",
            [RUN_ID, json.dumps(spec), len(POINTS) * -(-n_items // 16), len(POINTS) * n_items],
        )
        con.execute(
            "INSERT INTO run_prompts (run_id, prompt_set, prompt_id, prompt, categories, hard, line) "
            "SELECT ?, 'synthetic', 'p' || i, 'prompt ' || i, ['benign'], false, i FROM range(?) t(i)",
            [RUN_ID, n_prompts],
        )
        con.execute(
            """
            INSERT INTO generations BY NAME
            SELECT $1 AS run_id, p.method || '-' || p.level || '-' || lpad((i // 16)::VARCHAR, 6, '0') AS batch_id,
                   md5(p.method || '/' || p.level || '/' || i::VARCHAR) AS generation_id,
                   'p' || (i // 2) AS prompt_id, 'prompt ' || (i // 2) AS prompt, 42 + i % 2 AS seed,
                   i % 2 AS image_index, p.method, p.level, p.method_config, p.config_hash,
                   'ddim' AS scheduler, 2 AS steps, 7.5 AS guidance, 64 AS height, 64 AS width,
                   'builtin:tiny' AS model_id, 'float32' AS dtype, '{}' AS packages,
                   '/nonexistent/' || i::VARCHAR || '.png' AS image_uri, repeat('0', 64) AS image_sha256,
                   md5('baseline/off/' || i::VARCHAR) AS baseline_generation_id, false AS reused,
                   now() AS created_at
            FROM pts p, range($2) t(i)
            """,
            [RUN_ID, n_items],
        )
        con.execute(
            "INSERT INTO batches (batch_id, run_id, method, method_label, level, knob, method_config, config_hash, "
            "n_items, n_generated, n_reused, wall_s, worker, finished_at, loaded_at) "
            "SELECT batch_id, run_id, method, NULL, level, NULL, any_value(method_config), "
            "any_value(config_hash), count(*), count(*), 0, 1.0, 'synthetic', now(), now() "
            "FROM generations WHERE run_id = ? GROUP BY ALL",
            [RUN_ID],
        )
        con.execute(
            "INSERT INTO scores SELECT g.generation_id, m.scorer, m.scorer_version, m.model_sha256, m.metric, "
            "m.value, m.details, g.batch_id, now() FROM generations g, metric_list m WHERE g.run_id = ?",
            [RUN_ID],
        )
        con.execute("COMMIT")
        sizes = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("generations", "scores", "batches")
        }
    return {"run_id": RUN_ID, **sizes}
