"""Validation at scale: the SQL-side suites on a synthetic 100k-generation run, and image-check throughput."""

from __future__ import annotations

import hashlib
import io
import json
import time

import numpy as np
import pytest
import validation_synthetic as synthetic  # beside this file (conftest puts the folder on sys.path)

from pipelines.expectations import Params, check_names
from pipelines.validate import run_validation, validate_run
from pipelines.warehouse import writer

IMAGE_CHECKS = {"image_files_exist", "image_sha256_matches", "image_decodes_to_recorded_size"}


@pytest.mark.slow
def test_small_synthetic_run_passes(tmp_path):
    wh = str(tmp_path / "wh.duckdb")
    info = synthetic.build(wh, n_prompts=40)
    summary, results = run_validation(wh, info["run_id"], params=Params(check_images=False))
    assert summary["success"], summary["failed"]
    assert set(summary["skipped"]) == IMAGE_CHECKS | {"config_rebuilds_from_registry"}
    assert summary["n_generations"] == 5 * 40 * 2 == info["generations"]
    assert {r.expectation for r in results} == set(check_names())

    # the Airflow entry point: a small JSON-able dict, the run's status set
    out = validate_run(wh, info["run_id"], check_images=False)
    assert json.loads(json.dumps(out))["status"] == "validated" and out["failed"] == []


@pytest.mark.slow
def test_sql_side_suites_on_100k_generations(tmp_path, capsys):
    wh = str(tmp_path / "wh.duckdb")
    t0 = time.perf_counter()
    info = synthetic.build(wh, n_prompts=10_000)
    built = time.perf_counter() - t0
    assert info["generations"] == 100_000

    import great_expectations  # noqa: F401  (import cost reported apart: paid once per worker process)

    t0 = time.perf_counter()
    summary, _ = run_validation(wh, info["run_id"], params=Params(check_images=False))
    clean_s = time.perf_counter() - t0
    assert summary["success"], summary["failed"]

    # Faults at scale are still caught by name, with exact counts.
    with writer(wh) as con:
        con.execute(
            "UPDATE scores SET value = 7 WHERE metric = 'red_fraction' AND generation_id IN "
            "(SELECT generation_id FROM generations WHERE level = 'weak' ORDER BY generation_id LIMIT 3)"
        )
        con.execute(
            "DELETE FROM generations WHERE generation_id = "
            "(SELECT min(generation_id) FROM generations WHERE method = 'baseline')"
        )
    t0 = time.perf_counter()
    summary, result_list = run_validation(wh, info["run_id"], params=Params(check_images=False))
    results = {r.expectation: r for r in result_list}
    faulty_s = time.perf_counter() - t0
    assert {"score_values_in_range", "baseline_present_for_every_generation"} <= set(summary["failed"])
    assert results["score_values_in_range"].unexpected_count == 3
    assert results["baseline_present_for_every_generation"].unexpected_count == 4  # 4 negative_prompt levels

    with capsys.disabled():
        print(
            f"\n[validate 100k] {info['generations']} generations, {info['scores']} score rows: built {built:.1f} s, "
            f"validated (no images) clean {clean_s:.2f} s, with faults {faulty_s:.2f} s"
        )
    assert clean_s < 120  # seconds on a quiet 2-core machine; generous for a shared one


@pytest.mark.slow
def test_image_check_throughput_and_one_changed_byte(tmp_path, capsys):
    import duckdb
    from PIL import Image

    from pipelines.expectations.images import check_images

    n = 2000
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            buf, format="PNG", compress_level=1
        )
        path = tmp_path / f"{i:05d}.png"
        path.write_bytes(buf.getvalue())
        rows.append((f"g{i:05d}", str(path), hashlib.sha256(buf.getvalue()).hexdigest(), 64, 64))
    data = bytearray((tmp_path / "01234.png").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "01234.png").write_bytes(bytes(data))

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE generations (run_id VARCHAR, generation_id VARCHAR, image_uri VARCHAR, image_sha256 VARCHAR, "
        "height INTEGER, width INTEGER)"
    )
    con.executemany("INSERT INTO generations VALUES ('r', ?, ?, ?, ?, ?)", rows)
    t0 = time.perf_counter()
    df, stats = check_images(con, "r", Params())
    full_s = time.perf_counter() - t0
    assert stats["verified"] == n
    assert df.loc[df.image_sha256_ok == False, "generation_id"].tolist() == ["g01234"]  # noqa: E712
    assert df.image_exists.all()

    t0 = time.perf_counter()
    df, stats = check_images(con, "r", Params(sample=0))
    exists_s = time.perf_counter() - t0
    assert stats["verified"] == 0 and df.image_sha256_ok.isna().all()
    with capsys.disabled():
        print(
            f"\n[image checks] {n} 64x64 PNGs: sha256 + decode {1000 * full_s / n:.3f} ms/image "
            f"(100k ~ {100 * full_s / n * 1000:.0f} s); existence only {1000 * exists_s / n:.3f} ms/image"
        )
