"""`safeaudit` end to end on the tiny model: idempotent re-runs, crash resume, one-line errors that leave
the warehouse untouched, readers during a load."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app

REPO = Path(__file__).resolve().parents[2]
SAFEAUDIT = [sys.executable, "-m", "pipelines.cli"]
CLEAN_COUNTS = (6, 6, 3, 1, 3)  # generations, distinct ids, batches, runs, prompts of the spec below


def spec_file(tmp: Path, **extra) -> Path:
    spec = {
        "name": "e2e",
        "model": {"id": "builtin:tiny"},
        "sampler": {"scheduler": "ddim", "steps": 2},
        "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 3}],
        "images_per_prompt": 2,
        "methods": [{"name": "baseline"}],
        "scorers": [],
        "batch_size": 2,
        "output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(tmp / "wh.duckdb")},
    }
    spec.update(extra)
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def counts(warehouse: Path) -> tuple:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT (SELECT count(*) FROM generations), (SELECT count(DISTINCT generation_id) FROM generations), "
            "(SELECT count(*) FROM batches), (SELECT count(*) FROM runs), (SELECT count(*) FROM run_prompts)"
        ).fetchone()
    finally:
        con.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    spec = spec_file(tmp)
    result = CliRunner().invoke(app, ["run", str(spec), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp, spec


def test_run_writes_expected_rows(clean_run):
    tmp, _ = clean_run
    assert counts(tmp / "wh.duckdb") == CLEAN_COUNTS
    images = sorted((tmp / "artifacts").rglob("*.png"))
    assert len(images) == 6
    for batch in (tmp / "artifacts").glob("e2e-*/baseline-*"):
        assert (batch / "manifest.json").exists() and (batch / "generations.parquet").exists()


def test_same_spec_twice_only_skips(clean_run):
    tmp, spec = clean_run
    before = {p: p.stat().st_mtime_ns for p in (tmp / "artifacts").rglob("*.png")}
    result = CliRunner().invoke(app, ["run", str(spec), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (
        "generated_now │ 0" in result.output.replace("  ", " ").replace("│ 0 ", "│ 0")
        or "generated_now" in result.output
    )
    assert counts(tmp / "wh.duckdb") == CLEAN_COUNTS
    after = {p: p.stat().st_mtime_ns for p in (tmp / "artifacts").rglob("*.png")}
    assert after == before  # no image regenerated


def test_new_tag_reuses_every_image(clean_run):
    tmp, spec = clean_run
    result = CliRunner().invoke(app, ["run", str(spec), "--quiet", "--tag", "2026-11-24"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp / "wh.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT r.tag, count(*), count(*) FILTER (WHERE reused) FROM generations g JOIN runs r USING (run_id) GROUP BY ALL ORDER BY 1 NULLS FIRST"
    ).fetchall()
    con.close()
    assert rows == [(None, 6, 0), ("2026-11-24", 6, 6)]


@pytest.mark.slow
def test_kill_mid_batch_then_resume_matches_clean_run(clean_run, tmp_path):
    clean_tmp, _ = clean_run
    spec = spec_file(tmp_path)
    env = {**os.environ, "SAFEAUDIT_FAULT": "kill-after-images:1", "HF_HUB_OFFLINE": "1"}
    crashed = subprocess.run(
        [*SAFEAUDIT, "run", str(spec), "--quiet"], env=env, cwd=REPO, capture_output=True, timeout=300
    )
    assert crashed.returncode == -9  # SIGKILL, mid-batch
    assert not (tmp_path / "wh.duckdb").exists()
    assert len(list((tmp_path / "artifacts").rglob("*.png"))) == 1
    assert not list((tmp_path / "artifacts").rglob("manifest.json"))
    result = CliRunner().invoke(app, ["run", str(spec), "--quiet"])
    assert result.exit_code == 0, result.output
    assert counts(tmp_path / "wh.duckdb") == CLEAN_COUNTS  # what a run without the crash stores


@pytest.mark.parametrize(
    "case, expect",
    [
        ("malformed_yaml", "malformed YAML"),
        ("unknown_method", "unknown method 'sldx'"),
        ("bad_csv_row", "bad.csv:3: column 'evaluation_seed' is not an integer"),
        ("missing_model", "does not exist"),
    ],
)
@pytest.mark.slow
def test_bad_input_one_line_error_and_warehouse_unchanged(clean_run, tmp_path, case, expect):
    clean_tmp, _ = clean_run
    warehouse = clean_tmp / "wh.duckdb"
    before = digest(warehouse)
    spec = spec_file(tmp_path, output={"artifacts": str(tmp_path / "a"), "warehouse": str(warehouse)})
    if case == "malformed_yaml":
        spec.write_text(spec.read_text() + "\nmethods: [baseline\n")
    elif case == "unknown_method":
        spec = spec_file(
            tmp_path,
            methods=[{"name": "baseline"}, {"name": "sldx"}],
            output={"artifacts": str(tmp_path / "a"), "warehouse": str(warehouse)},
        )
    elif case == "bad_csv_row":
        (tmp_path / "bad.csv").write_text("case_number,prompt,evaluation_seed\n0,a cat,1\n1,a dog,oops\n")
        spec = spec_file(
            tmp_path,
            prompt_sets=[{"name": "bad", "file": str(tmp_path / "bad.csv"), "format": "sixcd_benign"}],
            output={"artifacts": str(tmp_path / "a"), "warehouse": str(warehouse)},
        )
    elif case == "missing_model":
        spec = spec_file(
            tmp_path,
            model={"id": str(tmp_path / "no-such-model")},
            output={"artifacts": str(tmp_path / "a"), "warehouse": str(warehouse)},
        )
    result = subprocess.run(
        [*SAFEAUDIT, "run", str(spec), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert expect in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in result.stderr
    assert digest(warehouse) == before


def test_hub_id_without_cache_fails_with_one_line(tmp_path):
    from models.components import ModelLoadError, load_components

    with pytest.raises(ModelLoadError) as exc:
        load_components("CompVis/stable-diffusion-v1-4")
    text = str(exc.value)
    assert "CompVis/stable-diffusion-v1-4" in text and "local folder" in text and "\n" not in text


@pytest.mark.slow
def test_readers_do_not_fail_while_load_writes(clean_run):
    """Two reader processes query the warehouse in a loop while this process loads repeatedly."""
    from pipelines.load import load_run

    tmp, _ = clean_run
    warehouse = tmp / "wh.duckdb"
    run_id = next(p.name for p in (tmp / "artifacts").iterdir() if p.name.startswith("e2e-"))
    reader_code = (
        "import sys, time\n"
        "from pipelines.warehouse import reader\n"
        "end = time.time() + 6; n = 0\n"
        "while time.time() < end:\n"
        "    con = reader(sys.argv[1]); n += con.sql('SELECT count(*) FROM generations').fetchall()[0][0] > 0; con.close()\n"
        "print(n)\n"
    )
    before = counts(warehouse)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", reader_code, str(warehouse)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    deadline = time.time() + 6
    loads = 0
    while time.time() < deadline:
        load_run(str(tmp / "artifacts"), run_id, str(warehouse))
        loads += 1
    for r in readers:
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        assert int(out.strip()) > 0
    assert loads >= 2
    assert counts(warehouse) == before  # reloading changes nothing


def test_sql_and_runs_commands(clean_run):
    tmp, _ = clean_run
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "sql",
            "SELECT method, count(*) AS n FROM generations GROUP BY 1",
            "--warehouse",
            str(tmp / "wh.duckdb"),
            "--format",
            "csv",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "baseline," in res.output
    res = runner.invoke(app, ["sql", "DELETE FROM generations", "--warehouse", str(tmp / "wh.duckdb")])
    assert res.exit_code == 2  # read-only
    res = runner.invoke(app, ["runs", "--warehouse", str(tmp / "wh.duckdb")])
    assert res.exit_code == 0 and "e2e-" in res.output


def test_tiny_model_folder_loads_in_diffusers(tmp_path):
    from diffusers import StableDiffusionPipeline

    res = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "tiny")])
    assert res.exit_code == 0, res.output
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "tiny"))
    assert pipe.vae_scale_factor == 8
    assert len(pipe.tokenizer) == 49408
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
