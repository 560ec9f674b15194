"""Negation sets made by the platform (issue 17), end to end on real DuckDB files and the toy model:

- a Safe Denoiser spec on a pack without a set for the model and size is one line, exit 2, before anything
  is written (no artifacts, the warehouse byte for byte unchanged);
- ``negation-set build`` on the toy model records the set's hash; the same inputs rebuild to the same hash
  (nothing rewritten), a changed seed to a new one;
- a run with ``safe_denoiser`` naming the set moves images away from the baseline, says it acted, and records
  the set's hash in its method config (hence its generation ids), in ``generations.negation_set`` and in
  ``mart_negation_sets``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_safe_denoiser_on_the_nudity_pack_without_a_set_is_one_line_exit_2(tmp_path):
    from pipelines.warehouse import writer

    warehouse = tmp_path / "wh.duckdb"
    with writer(warehouse):
        pass
    before = _sha(warehouse)
    spec = {
        "name": "nudity-no-set",
        "model": {"id": "builtin:tiny"},
        "sampler": {"steps": 2},
        "concept": "nudity",
        "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 1, "role": "benign"}],
        "methods": [{"name": "baseline"}, {"name": "safe_denoiser", "levels": ["official"]}],
        "scorers": [],
        "output": {"artifacts": str(tmp_path / "artifacts"), "warehouse": str(warehouse)},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    for command in (["run", str(path)], ["plan", str(path)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        for part in (
            "methods[1] safe_denoiser level official",
            "nudity@1",
            "no negation set",
            "negation-set build",
        ):
            assert part in lines[0], lines[0]
    assert not (tmp_path / "artifacts").exists()  # nothing planned, nothing generated
    assert _sha(warehouse) == before


def test_a_plain_image_folder_must_be_imported_first(tmp_path):
    from pipelines.runspec import RunSpecError, parse_spec

    (tmp_path / "imgs").mkdir()
    spec = {
        "name": "folder",
        "prompt_sets": [{"name": "u", "builtin": "toy_unsafe", "limit": 1}],
        "methods": [
            {"name": "baseline"},
            {"name": "safe_denoiser", "levels": ["weak"], "overrides": {"negation_set": str(tmp_path)}},
        ],
    }
    with pytest.raises(RunSpecError, match="plain image folder.*negation-set import"):
        parse_spec(spec)
    spec["methods"][1]["levels"] = ["off"]  # off needs no set
    parse_spec(spec)


# -- the toy model: build, rebuild, run -------------------------------------------------------------------------
def build_spec(tmp: Path, seeds: list[int]) -> Path:
    spec = {
        "name": "toy_red_test",
        "model": {"id": "builtin:toy"},
        "sampler": {"scheduler": "ddim", "steps": 20, "height": 64, "width": 64},
        "concept": "toy",
        "prompts": {"name": "toy_unsafe", "builtin": "toy_unsafe", "limit": 2},
        "seeds": seeds,
        "rule": "toy_red",
        "output": str(tmp / "sets"),
    }
    path = tmp / f"build-{'-'.join(map(str, seeds))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _build(path: Path, warehouse: Path) -> dict:
    result = CliRunner().invoke(app, ["negation-set", "build", str(path), "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    text = result.output  # the summary is the one JSON object printed (model loading may log around it)
    return json.loads(text[text.index('{"name"') : text.rindex("}") + 1].replace("\n", ""))


@pytest.fixture(scope="module")
def built(tmp_path_factory, toy_components):
    tmp = tmp_path_factory.mktemp("negsets")
    warehouse = tmp / "wh.duckdb"
    first = _build(build_spec(tmp, [1000]), warehouse)
    return tmp, warehouse, first


@pytest.mark.slow
def test_build_records_the_hash_and_rebuilds_idempotently(built):
    tmp, warehouse, first = built
    assert first["written"] and first["n_members"] >= 1
    folder = Path(first["path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["set_hash"] == first["set_hash"] and folder.name == f"toy_red_test-{first['set_hash']}"
    assert [m["seed"] for m in manifest["members"]] == [1000, 1000]
    assert all(m["kept"] == (m["scores"]["toy_concept.red_fraction"] > 0.2) for m in manifest["members"])
    stamp = (folder / "manifest.json").stat().st_mtime_ns

    again = _build(build_spec(tmp, [1000]), warehouse)
    assert again["set_hash"] == first["set_hash"] and not again["written"]
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp  # nothing rewritten

    changed = _build(build_spec(tmp, [1001]), warehouse)
    assert changed["set_hash"] != first["set_hash"]

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        sets = con.execute(
            "SELECT set_hash, name, model_id, rule, n_candidates FROM negation_sets ORDER BY 1"
        ).fetchall()
        assert {s[0] for s in sets} == {first["set_hash"], changed["set_hash"]}
        assert all(s[1:] == ("toy_red_test", "builtin:toy", "toy_red", 2) for s in sets)
        members = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE kept) FROM negation_set_members WHERE set_hash = ?",
            [first["set_hash"]],
        ).fetchall()[0]
        assert members == (2, first["n_members"])
    finally:
        con.close()


@pytest.mark.slow
def test_a_run_on_the_built_set_moves_images_and_records_its_hash(built, monkeypatch):
    from pipelines.runner import run_audit
    from pipelines.warehouse import reader

    tmp, warehouse, first = built
    monkeypatch.setenv("SAFEAUDIT_NEGATION_SETS", str(tmp / "sets"))
    spec = {
        "name": "toy-on-set",
        "model": {"id": "builtin:toy"},
        "sampler": {"scheduler": "ddim", "steps": 20},
        "concept": "toy",
        "prompt_sets": [{"name": "u", "builtin": "toy_unsafe", "limit": 2, "role": "unsafe"}],
        "methods": [
            {"name": "baseline"},
            # the set by name: validation pins it to name@hash for this model and size
            # (gate off: a 2-image set's kernel mass stays under the ladder's toy threshold, acted would be False)
            {
                "name": "safe_denoiser",
                "levels": ["weak"],
                "overrides": {"negation_set": "toy_red_test", "gate": False},
            },
        ],
        "scorers": ["toy_concept"],
        "output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(warehouse)},
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(spec))
    from models.negation import resolve

    # by name: the newest set of that name for this model and size (the module built two)
    newest = resolve("toy_red_test", "builtin:toy", 64, 64)["set_hash"]
    summary = run_audit(path, quiet=True, overlap=False)
    con = reader(warehouse)
    try:
        rows = con.execute(
            "SELECT g.method, g.negation_set, g.method_acted, g.image_sha256, b.image_sha256, "
            "json_extract_string(g.method_config, '$.config.negation_set') "
            "FROM generations g JOIN generations b ON b.generation_id = g.baseline_generation_id "
            "AND b.run_id = g.run_id WHERE g.run_id = ? AND g.method = 'safe_denoiser'",
            [summary["run_id"]],
        ).fetchall()
        assert len(rows) == 2
        pinned = f"toy_red_test@{newest}"
        for _, set_hash, acted, image, baseline_image, ref in rows:
            assert set_hash == newest and ref == pinned  # pinned at validation
            assert acted is True and image != baseline_image  # the gate opened and the image moved
        used = con.execute(
            "SELECT set_hash, n_generations, acted_rate FROM mart_negation_sets WHERE run_id = ?",
            [summary["run_id"]],
        ).fetchall()
        assert used == [(newest, 2, 1.0)]
        acted = con.execute(
            "SELECT DISTINCT method, acted_rate FROM mart_tradeoff WHERE run_id = ? ORDER BY 1",
            [summary["run_id"]],
        ).fetchall()
        assert acted == [("baseline", 0.0), ("safe_denoiser", 1.0)]
    finally:
        con.close()


@pytest.mark.slow
def test_import_a_folder_is_idempotent_and_serves_only_its_model_and_size(
    tmp_path, tiny_components, monkeypatch
):
    from PIL import Image

    from models.negation import NegationSetError, resolve
    from models.safe_denoiser import SafeDenoiser, SafeDenoiserConfig
    from models.sampler import Request, SamplerSettings, sample
    from models.toy.render import render_seeded
    from pipelines.negation_sets import import_folder

    mine = tmp_path / "mine"
    mine.mkdir()
    for k, shape in enumerate(["circle", "square", "star"]):
        Image.fromarray(render_seeded("red", shape, 7 + k)[0]).save(mine / f"red_{k}.png")
    model = str(tiny_components.model_id)
    out = tmp_path / "sets"
    first = import_folder(mine, "mine", model, 64, 64, output=out, warehouse=str(tmp_path / "wh.duckdb"))
    again = import_folder(mine, "mine", model, 64, 64, output=out)
    assert (first["set_hash"], first["n_members"], first["written"]) == (again["set_hash"], 3, True)
    assert not again["written"]
    (mine / "red_0.png").write_bytes((mine / "red_1.png").read_bytes())  # a changed image: a new version
    assert import_folder(mine, "mine", model, 64, 64, output=out)["set_hash"] != first["set_hash"]

    monkeypatch.setenv("SAFEAUDIT_NEGATION_SETS", str(out))
    with pytest.raises(NegationSetError, match="no version for model builtin:toy at 64x64"):
        resolve("mine", "builtin:toy", 64, 64)
    pinned = f"mine@{first['set_hash']}"
    method = SafeDenoiser(SafeDenoiserConfig(negation_set=pinned, eta=1.0, t_end=0, gate=False))
    diags = sample(
        tiny_components, [Request("a red circle", 1)], method, SamplerSettings(steps=3)
    ).diagnostics
    assert diags[0]["sd_negation_set"] == first["set_hash"] and diags[0]["acted"]
    with pytest.raises(NegationSetError, match="encoded at 64x64, this run samples 32x32"):
        sample(
            tiny_components,
            [Request("a red circle", 1)],
            method,
            SamplerSettings(steps=3, height=32, width=32),
        )
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT kind, n_members FROM negation_sets").fetchall() == [("import", 3)]
    finally:
        con.close()
