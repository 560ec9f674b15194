"""`safeaudit run` finishes batches in a helper process while the next one samples: same results as the
serial path that decodes every PNG, resumable after a kill mid-run, and a failure in the helper stops the
run with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app

REPO = Path(__file__).resolve().parents[2]
SAFEAUDIT = [sys.executable, "-m", "pipelines.cli"]
N_IMAGES = 8  # 2 prompts x 2 images x 2 method points, 4 batches of 2


def spec_file(tmp: Path) -> Path:
    spec = {
        "name": "overlap",
        "model": {"id": "builtin:tiny"},
        "sampler": {"scheduler": "ddim", "steps": 2},
        "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 2}],
        "images_per_prompt": 2,
        # sld first: the runner must still write the baseline images before fidelity needs them
        "methods": [{"name": "sld", "levels": ["strong"]}, {"name": "baseline"}],
        "scorers": ["degenerate", "fidelity", "nudenet"],
        "batch_size": 2,
        "output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(tmp / "wh.duckdb")},
    }
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def stored(warehouse: Path) -> tuple[list, list]:
    """(images, scores) of the warehouse, without run ids, batch ids or times."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        images = con.execute(
            "SELECT generation_id, method, image_sha256, reused FROM generations ORDER BY ALL"
        ).fetchall()
        scores = con.execute(
            "SELECT generation_id, scorer, scorer_version, metric, value, details FROM scores ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    return images, scores


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The serial path: each batch written, then scored from its decoded PNGs, before the next samples."""
    from pipelines import score
    from pipelines.runner import run_audit

    tmp = tmp_path_factory.mktemp("serial")
    decoded = []
    original = score.decode_png
    score.decode_png = lambda data: decoded.append(1) or original(data)
    try:
        summary = run_audit(spec_file(tmp), quiet=True, overlap=False, handoff=False)
    finally:
        score.decode_png = original
    assert summary["generations"] == N_IMAGES and decoded  # every image was read back from its file
    return stored(tmp / "wh.duckdb")


def test_cli_run_matches_the_serial_path(reference, tmp_path):
    result = CliRunner().invoke(app, ["run", str(spec_file(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    images, scores = stored(tmp_path / "wh.duckdb")
    assert len(images) == N_IMAGES and not any(r[3] for r in images)
    assert {r[1] for r in scores} == {"degenerate", "fidelity", "nudenet"}
    assert (images, scores) == reference  # same PNG bytes, same score values and details


def test_handoff_scores_without_decoding_and_identically(reference, tmp_path):
    from pipelines import score
    from pipelines.runner import run_audit

    decoded = []
    original = score.decode_png
    score.decode_png = lambda data: decoded.append(1) or original(data)
    try:
        run_audit(spec_file(tmp_path), quiet=True, overlap=False, handoff=True)
    finally:
        score.decode_png = original
    assert decoded == []  # every scorer, baselines included, took the arrays just written
    assert stored(tmp_path / "wh.duckdb") == reference


@pytest.mark.slow
def test_kill_while_a_later_batch_is_written_then_resume(reference, tmp_path):
    spec = spec_file(tmp_path)
    env = {**os.environ, "SAFEAUDIT_FAULT": "kill-after-images:3", "HF_HUB_OFFLINE": "1"}
    crashed = subprocess.run(
        [*SAFEAUDIT, "run", str(spec), "--quiet"], env=env, cwd=REPO, capture_output=True, timeout=300
    )
    assert crashed.returncode == -9, crashed.stderr  # the run died, not only its helper
    assert not (tmp_path / "wh.duckdb").exists()
    artifacts = tmp_path / "artifacts"
    assert len(list(artifacts.rglob("*.png"))) == 3  # batch 1 complete, batch 2 half written
    (done,) = [p.parent for p in artifacts.rglob("manifest.json")]
    assert (done / "scores_manifest.json").exists()  # batch 1 was scored before batch 2 was written
    assert done.name.startswith("baseline-")  # baseline batches go first, whatever the spec's order

    resumed = subprocess.run(
        [*SAFEAUDIT, "run", str(spec), "--quiet"],
        env={**env, "SAFEAUDIT_FAULT": ""},
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert stored(tmp_path / "wh.duckdb") == reference


@pytest.mark.slow
def test_failure_in_the_helper_stops_the_run_with_one_line(tmp_path):
    spec = spec_file(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAFEAUDIT_LPIPS_BACKBONE": str(tmp_path / "missing.pth")}
    result = subprocess.run(
        [*SAFEAUDIT, "run", str(spec), "--quiet"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    # the model loaded before the failure, so transformers' load progress may come first; the error is
    # one line, the last, with no traceback
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    assert "LPIPS needs both weight files" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "wh.duckdb").exists()
    artifacts = tmp_path / "artifacts"
    assert not list(artifacts.rglob("manifest.json"))  # stopped before the first batch was written

    env.pop("SAFEAUDIT_LPIPS_BACKBONE")
    fixed = subprocess.run(
        [*SAFEAUDIT, "run", str(spec), "--quiet"], env=env, cwd=REPO, capture_output=True, timeout=300
    )
    assert fixed.returncode == 0, fixed.stderr
    images, _ = stored(tmp_path / "wh.duckdb")
    assert len(images) == N_IMAGES


def test_memo_answers_only_for_the_file_it_was_written_to():
    from pipelines.storage import ImageMemo, decode_png, png_bytes

    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    memo = ImageMemo(max_bytes=2 * image.nbytes)
    memo.put("g1", "/a/g1.png", image)
    kept = memo.get("g1", "/a/g1.png")
    assert np.array_equal(kept, decode_png(png_bytes(image))) and not kept.flags.writeable
    assert memo.get("g1", "/elsewhere/g1.png") is None  # a reused image with the same id: its own file
    memo.put("g1", "/a/g1.png", image[..., 0])  # not RGB: decoding would convert it, so not kept
    memo.put("g2", "/a/g2.png", image)
    memo.put("g3", "/a/g3.png", image)  # over budget: the least recently used goes
    assert memo.get("g1", "/a/g1.png") is None and memo.get("g3", "/a/g3.png") is not None
