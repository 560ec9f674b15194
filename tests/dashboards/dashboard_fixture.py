"""The SQL fixture warehouse (tests/sql/fixtures.py, known numbers) plus what the dashboard needs on top.

``build_dashboard_warehouse(root)`` builds the fixture, then, through the real single writer:

* a synthetic thumbnail (64 px lossless WebP checkerboard: red/green where the fixture makes the image
  unsafe, blue/white otherwise) for every generation, so blur can be measured on pixels;
* full-size PNGs (128 px) under ``root/artifacts`` for run 1's U1 and B1 images, their ``image_uri``
  pointing there; and hostile URIs on four baseline images (``..`` out of the root, a symlink out of the
  root, ``file:///etc/passwd``, an http URL) that must fall back to the thumbnail;
* run 3 (tag nightly-3, **quarantined**): run 2's rows again;
* run 4 (tag nightly-4, validated, all 10 prompts, baseline and sld/weak as new images): under nudenet_i2p
  every unsafe-role baseline image is unsafe (10/10) and no sld/weak one is (0/10).

Hand-worked run-to-run tests (unsafe rate on unsafe-role prompts, mart_tradeoff, pooled z test):

* run 2 vs run 1: baseline 5/10 -> 4/8 (z 0); sld/weak 2/10 -> 5/8: z = 0.425 / 0.2313 = 1.84, p = 0.066,
  **not** a regression although the rate tripled.
* run 4 vs run 2 (run 3 is quarantined, so never "previous"): baseline 4/8 -> 10/10: pooled 14/18,
  se = sqrt(0.7778 * 0.2222 * (1/8 + 1/10)) = 0.1972, z = 2.54, p = 0.011: a **regression**; sld/weak
  5/8 -> 0/10: z = -2.94, p = 0.0033: an improvement.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from tests.sql.fixtures import RUN_1, RUN_2, T0, UNSAFE, build_fixture_warehouse

RUN_3 = "fixture-run-3"
RUN_4 = "fixture-run-4"
THUMB_PX = 64
FULL_PX = 128
FULL_IMAGE_PROMPTS = ("U1", "B1")
HOSTILE_URIS = {  # generation -> what its image_uri becomes (the artifacts root is substituted in)
    "baseline.off.U2.0": "{root}/../outside/secret.png",
    "baseline.off.U2.1": "{root}/fixture-run-1/escape.png",  # a symlink to ../outside/secret.png
    "baseline.off.U3.0": "file:///etc/passwd",
    "baseline.off.U3.1": "http://example.com/x.png",
}
POINT_COLOURS = {  # the non-red colour of each method point's checkerboard, so pages look distinct
    "baseline.off": (40, 40, 40),
    "sld.weak": (30, 90, 200),
    "sld.strong": (20, 140, 160),
    "safree.weak": (150, 60, 190),
    "safree.strong": (200, 140, 20),
}


@dataclass
class DashboardWarehouse:
    path: Path
    artifacts: Path
    outside: Path  # a folder beside the artifacts root that must never be served
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # generation_id -> stored WebP bytes
    full_images: dict[str, Path] = field(default_factory=dict)  # generation_id -> PNG under artifacts

    @property
    def labels_dir(self) -> Path:
        return self.path.parent / "labels"


def _point_of(gid: str) -> str:
    parts = gid.removeprefix("r4.").split(".")
    return ".".join(parts[:2])


def _is_unsafe(run_id: str, gid: str) -> bool:
    parts = gid.removeprefix("r4.").split(".")
    point, prompt, k = ".".join(parts[:2]), parts[-2], int(parts[-1])
    if gid.startswith("r4."):  # run 4's detections (see the module docstring)
        return point == "baseline.off" and prompt in ("U1", "U2", "U3", "U4", "M1")
    key = (RUN_2 if ".v2." in gid else RUN_1, point)
    return bool(UNSAFE.get(key, {}).get(prompt, (0, 0))[k])


def checkerboard(size: int, fg: tuple[int, int, int], bg: tuple[int, int, int], cell: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    mask = ((yy // cell + xx // cell) % 2).astype(bool)
    img = np.where(mask[..., None], np.array(fg, np.uint8), np.array(bg, np.uint8))
    img[: size // 8] = bg  # a solid band so the image is not pure texture
    return img.astype(np.uint8)


def image_for(run_id: str, gid: str, size: int) -> np.ndarray:
    unsafe = _is_unsafe(run_id, gid)
    fg = (220, 20, 20) if unsafe else (235, 235, 235)
    bg = (20, 170, 40) if unsafe else POINT_COLOURS.get(_point_of(gid), (90, 90, 90))
    return checkerboard(size, fg, bg)


def webp_lossless(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _copy_run(con, src_run: str, new_run: str, tag: str, planned, status: str) -> None:
    con.execute(
        "INSERT INTO runs SELECT ? AS run_id, name, ? AS tag, spec_json, spec_sha256 || ?, concept_pack, concept_sha, "
        "model_id, code_version, ? AS planned_at, ? AS loaded_at, n_batches, n_expected, ? AS status "
        "FROM runs WHERE run_id = ?",
        [new_run, tag, new_run, planned, planned + timedelta(hours=2), status, src_run],
    )


def build_dashboard_warehouse(root: str | Path) -> DashboardWarehouse:
    """Build the fixture under ``root/warehouse`` with the additions above; returns paths and image bytes."""
    from pipelines.warehouse import writer

    root = Path(root)
    fw = build_fixture_warehouse(root / "warehouse" / "fixture.duckdb")
    artifacts = root / "artifacts"
    outside = root / "outside"
    artifacts.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.png").write_bytes(png(np.full((FULL_PX, FULL_PX, 3), 255, np.uint8)))
    (artifacts / RUN_1).mkdir(exist_ok=True)
    escape = artifacts / RUN_1 / "escape.png"
    if not escape.exists():
        os.symlink(outside / "secret.png", escape)
    out = DashboardWarehouse(path=fw.path, artifacts=artifacts, outside=outside)

    with writer(fw.path) as con:
        con.execute("BEGIN TRANSACTION")
        # run 3: quarantined copy of run 2
        _copy_run(con, RUN_2, RUN_3, "nightly-3", T0 + timedelta(days=1, hours=12), "quarantined")
        con.execute(
            "INSERT INTO run_prompts SELECT * REPLACE (? AS run_id) FROM run_prompts WHERE run_id = ?",
            [RUN_3, RUN_2],
        )
        con.execute(
            "INSERT INTO generations SELECT * REPLACE (? AS run_id, replace(batch_id, ?, ?) AS batch_id) "
            "FROM generations WHERE run_id = ?",
            [RUN_3, RUN_2, RUN_3, RUN_2],
        )
        con.execute(
            "INSERT INTO batches SELECT * REPLACE (replace(batch_id, ?, ?) AS batch_id, ? AS run_id) "
            "FROM batches WHERE run_id = ?",
            [RUN_2, RUN_3, RUN_3, RUN_2],
        )
        con.execute(
            "INSERT INTO validations VALUES (?, 'generations', '1', 'row_count', FALSE, '3', 21, '{}', ?)",
            [RUN_3, T0 + timedelta(days=1, hours=14)],
        )
        # run 4: run 1's prompts; baseline and sld/weak as new images with changed detections
        _copy_run(con, RUN_2, RUN_4, "nightly-4", T0 + timedelta(days=3), "validated")
        con.execute(
            "INSERT INTO run_prompts SELECT * REPLACE (? AS run_id) FROM run_prompts WHERE run_id = ?",
            [RUN_4, RUN_1],
        )
        points = ("baseline.off", "sld.weak")
        con.execute(
            "INSERT INTO generations SELECT * REPLACE (? AS run_id, replace(batch_id, ?, ?) AS batch_id, "
            "'r4.' || generation_id AS generation_id, 'r4.' || baseline_generation_id AS baseline_generation_id, "
            "FALSE AS reused, CASE WHEN wall_s = 0 THEN 1.0 ELSE wall_s END AS wall_s) "
            "FROM generations WHERE run_id = ? AND list_contains(?, method || '.' || level)",
            [RUN_4, RUN_1, RUN_4, RUN_1, list(points)],
        )
        con.execute(
            "INSERT INTO batches SELECT * REPLACE (replace(batch_id, ?, ?) AS batch_id, ? AS run_id, "
            "n_items AS n_generated, 0 AS n_reused) "
            "FROM batches WHERE run_id = ? AND list_contains(?, method || '.' || level)",
            [RUN_1, RUN_4, RUN_4, RUN_1, list(points)],
        )
        con.execute(
            "INSERT INTO scores SELECT * REPLACE ('r4.' || generation_id AS generation_id) FROM scores "
            "WHERE generation_id IN (SELECT generation_id FROM generations WHERE run_id = ? "
            "AND list_contains(?, method || '.' || level))",
            [RUN_1, list(points)],
        )
        unsafe_role = ["U1", "U2", "U3", "U4", "M1"]
        for point, dets in (
            (
                "baseline.off",
                [{"class": "FEMALE_BREAST_EXPOSED", "label_v2": None, "score": 0.9, "box": [1, 2, 10, 12]}],
            ),
            ("sld.weak", []),
        ):
            gids = [f"r4.{point}.{p}.{k}" for p in unsafe_role for k in (0, 1)]
            con.execute(
                "UPDATE scores SET details = ?, value = ? WHERE scorer = 'nudenet' AND list_contains(?, generation_id)",
                [json.dumps({"detections": dets, "min_score": 0.1}), float(len(dets)), gids],
            )

        # thumbnails and full images
        rows = con.execute(
            "SELECT DISTINCT run_id, batch_id, generation_id FROM generations ORDER BY 1, 3"
        ).fetchall()
        thumbs = {}
        for run_id, _batch, gid in rows:
            if gid not in thumbs:
                thumbs[gid] = webp_lossless(image_for(run_id, gid, THUMB_PX))
        con.register(
            "thumbs", pa.table({"generation_id": list(thumbs), "thumbnail": [thumbs[g] for g in thumbs]})
        )
        con.execute(
            "UPDATE generations SET thumbnail = t.thumbnail FROM thumbs t WHERE generations.generation_id = t.generation_id"
        )
        con.unregister("thumbs")
        out.thumbnails = thumbs
        for run_id, batch, gid in rows:
            if run_id != RUN_1 or gid.split(".")[-2] not in FULL_IMAGE_PROMPTS:
                continue
            path = artifacts / RUN_1 / batch / "images" / f"{gid}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png(image_for(run_id, gid, FULL_PX)))
            out.full_images[gid] = path
            con.execute("UPDATE generations SET image_uri = ? WHERE generation_id = ?", [str(path), gid])
        for gid, uri in HOSTILE_URIS.items():
            con.execute(
                "UPDATE generations SET image_uri = ? WHERE generation_id = ?",
                [uri.format(root=artifacts), gid],
            )
        con.execute("COMMIT")
    return out
