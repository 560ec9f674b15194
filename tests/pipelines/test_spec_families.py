"""Model families downstream of models/ (issue 14, item 5): the spec's `family:` and `models:`, the plan,
the warehouse rows, the marts, the report, through `safeaudit run`.

What samples here: builtin:tiny and builtin:toy (two models of family 'sd' in one run), always. The two-family
runs need issue 14b's `builtin:tiny-sdxl` / `builtin:tiny-sd3` and skip with that reason until it lands.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.runspec import RunSpecError, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]


def tiny_family_available(model_id: str) -> bool:
    """Whether issue 14b's tiny built-in of another family is in this checkout."""
    try:
        from models.components import resolve_model

        return resolve_model(model_id)[1] is not None
    except Exception:
        return False


needs_14b = pytest.mark.skipif(
    not tiny_family_available("builtin:tiny-sdxl"),
    reason="needs issue 14b: builtin:tiny-sdxl is not loadable in this checkout (the lead runs it after the merge)",
)


def _base(**extra) -> dict:
    spec = {
        "name": "fam",
        "sampler": {"scheduler": "ddim", "steps": 2},
        "concept": "toy",
        "prompt_sets": [
            {"name": "core", "builtin": "benign_core", "limit": 2, "role": "benign"},
            {"name": "red", "builtin": "toy_unsafe", "limit": 2, "role": "unsafe"},
        ],
        "methods": [{"name": "baseline"}, {"name": "negative_prompt", "levels": ["max"]}],
        "scorers": ["degenerate"],
        "batch_size": 2,
    }
    return spec | extra


TWO_SD = [{"id": "builtin:tiny"}, {"id": "builtin:toy", "batch_size": 4, "sampler": {"steps": 3}}]


# -- the run spec -------------------------------------------------------------------------------------------
def test_family_is_read_from_the_model_and_recorded_in_the_spec():
    spec = parse_spec(_base(model={"id": "builtin:tiny"}))
    assert spec.model.family == "sd" and spec.all_models == (spec.model,)
    assert spec.model_dump(mode="json")["model"]["family"] == "sd"  # so the run id carries it


def test_a_given_family_must_agree_with_the_model():
    with pytest.raises(RunSpecError, match=r"family 'sdxl' given, but builtin:tiny is a 'sd' model"):
        parse_spec(_base(model={"id": "builtin:tiny", "family": "sdxl"}))
    with pytest.raises(RunSpecError, match=r"model\.family"):
        parse_spec(_base(model={"id": "builtin:tiny", "family": "sd5"}))


def test_a_hub_id_not_on_disk_takes_the_given_family():
    spec = parse_spec(
        _base(model={"id": "some-org/some-sdxl-model", "family": "sdxl"}, methods=[{"name": "baseline"}])
    )
    assert spec.model.family == "sdxl"


def test_family_of_a_local_folder_comes_from_its_model_index(tmp_path):
    import json

    folder = tmp_path / "my-sdxl"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    spec = parse_spec(_base(model={"id": str(folder)}, methods=[{"name": "baseline"}]))
    assert spec.model.family == "sdxl" and spec.model.key == "my-sdxl"
    with pytest.raises(RunSpecError, match=r"family 'sd' given, but .*my-sdxl is a 'sdxl' model"):
        parse_spec(_base(model={"id": str(folder), "family": "sd"}, methods=[{"name": "baseline"}]))


def test_models_list_with_overrides():
    spec = parse_spec(_base(models=TWO_SD))
    tiny, toy = spec.all_models
    assert (tiny.key, toy.key) == ("tiny", "toy")
    assert spec.sampler_for(tiny).steps == 2 and spec.sampler_for(toy).steps == 3
    assert spec.sampler_for(toy).scheduler == "ddim"  # the rest from the run's sampler
    assert (tiny.batch_size, toy.batch_size) == (None, 4)


@pytest.mark.parametrize(
    "models, message",
    [
        ([{"id": "builtin:tiny"}, {"id": "builtin:tiny"}], r"models\[1\]: name 'tiny' used twice"),
        ([], r"list at least one model"),
    ],
)
def test_models_list_errors(models, message):
    with pytest.raises(RunSpecError, match=message):
        parse_spec(_base(models=models))


def test_model_and_models_together_is_an_error():
    with pytest.raises(RunSpecError, match="not both"):
        parse_spec(_base(model={"id": "builtin:tiny"}, models=TWO_SD))


def _unsupported_pair() -> tuple[str, str] | None:
    from models.registry import METHODS
    from pipelines.families import FAMILIES, supports

    for family in FAMILIES:
        for method in METHODS:
            if not supports(method, family):
                return method, family
    return None


def test_unsupported_method_family_pair_is_one_line_exit_2_before_anything_is_written(tmp_path):
    pair = _unsupported_pair()
    if pair is None:
        pytest.skip("every method supports every family in this checkout")
    method, family = pair
    from models.registry import method_class

    level = next(iter(method_class(method).LEVELS))
    spec = _base(
        model={"id": "some-org/a-model", "family": family},
        methods=[{"name": "baseline"}, {"name": method, "levels": [level]}],
        output={"artifacts": str(tmp_path / "art"), "warehouse": str(tmp_path / "wh.duckdb")},
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    from pipelines.cli import app

    result = CliRunner().invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and f"method {method!r}" in line and f"family {family!r}" in line
    assert not (tmp_path / "art").exists() and not (tmp_path / "wh.duckdb").exists()


@pytest.mark.parametrize("name", ["sdxl_nudity", "sd3_nudity", "tiny_families"])
def test_example_family_specs_validate(name):
    """The example specs validate (their prompt files are checked by the plan, see test_example_specs)."""
    path = REPO / "runspecs" / f"{name}.yaml"
    try:
        spec = load_spec(path)
    except RunSpecError as exc:
        if "does not support family" in str(exc) and _unsupported_pair() is not None:
            pytest.skip(f"needs issue 14b's method x family support: {exc}")
        raise
    expected = {"sdxl_nudity": {"sdxl"}, "sd3_nudity": {"sd3"}, "tiny_families": {"sd", "sdxl"}}[name]
    assert {m.family for m in spec.all_models} == expected


def test_example_family_specs_read_their_prompt_files(datasets_dir):
    from pipelines.plan import load_prompts

    for name in ("sdxl_nudity", "sd3_nudity"):
        # the baseline only: the prompt files are the point here (the methods' families need 14b)
        spec = load_spec(REPO / "runspecs" / f"{name}.yaml", {"methods": [{"name": "baseline"}]})
        prompts = load_prompts(spec, spec.concept)
        assert len(prompts) > 500 and all(p.source_sha256 for p in prompts if p.source_file)


# -- plan -------------------------------------------------------------------------------------------------
def test_two_models_plan_their_own_batches_ids_and_baselines(tmp_path):
    from pipelines.contract import read_batch
    from pipelines.plan import plan_run
    from pipelines.storage import Store

    out = {"artifacts": str(tmp_path / "art"), "warehouse": str(tmp_path / "wh.duckdb")}
    plan = plan_run(parse_spec(_base(models=TWO_SD, output=out)))
    store = Store(plan.artifacts)
    batches = [read_batch(store, plan.run_id, b) for b in plan.batch_ids]
    by_model = {}
    for b in batches:
        assert b.batch_id.startswith(f"{b.model.key}--")
        by_model.setdefault(b.model.key, []).append(b)
    assert set(by_model) == {"tiny", "toy"}
    # 4 prompts x 2 points: tiny in batches of 2 (the run's), toy in batches of 4 (its own)
    assert [len(b.items) for b in by_model["tiny"]] == [2, 2, 2, 2]
    assert [len(b.items) for b in by_model["toy"]] == [4, 4]
    assert {b.model.sampler.steps for b in by_model["toy"]} == {3}
    ids = {k: {i.generation_id for b in v for i in b.items} for k, v in by_model.items()}
    assert not ids["tiny"] & ids["toy"] and len(ids["tiny"]) == len(ids["toy"]) == 8
    for key, bs in by_model.items():  # each image's baseline is the same model's baseline image
        baselines = {i.generation_id for b in bs if b.method.name == "baseline" for i in b.items}
        assert {i.baseline_generation_id for b in bs for i in b.items} == baselines, key
    assert plan.n_expected == 16


def test_single_model_generation_ids_do_not_change(tmp_path):
    """A `model:` spec plans the same generation ids as before `models:` existed (images stay reusable):
    the id hashes the model id, revision, dtype, sampler, method config, prompt and seed."""
    import hashlib
    import json

    from pipelines.contract import read_batch
    from pipelines.plan import SAMPLER_VERSION, plan_run
    from pipelines.storage import Store

    out = {"artifacts": str(tmp_path / "art"), "warehouse": str(tmp_path / "wh.duckdb")}
    spec = parse_spec(_base(model={"id": "builtin:tiny"}, output=out, methods=[{"name": "baseline"}]))
    plan = plan_run(spec)
    batch = read_batch(Store(plan.artifacts), plan.run_id, plan.batch_ids[0])
    item = batch.items[0]
    blob = {
        "model": {"id": "builtin:tiny", "revision": None, "dtype": "float32"},
        "sampler": spec.sampler.model_dump(mode="json"),
        "sampler_version": SAMPLER_VERSION,
        "method": batch.method.resolved,
        "prompt": item.prompt,
        "seed": item.seed,
    }
    assert item.generation_id == hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:32]
    assert not batch.batch_id.startswith("tiny--")  # single-model batch ids keep their form


# -- end to end: safeaudit run -> DuckDB -> validation -> marts -> report ------------------------------------
def _run_and_check(tmp_path: Path, models: list[dict]) -> tuple[str, Path]:
    from pipelines.cli import app

    wh = tmp_path / "wh.duckdb"
    spec = _base(models=models, output={"artifacts": str(tmp_path / "art"), "warehouse": str(wh)})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    run_id = load_spec_run_id(path)
    return run_id, wh


def load_spec_run_id(path: Path) -> str:
    from pipelines.warehouse import reader

    con = reader(str(Path(yaml.safe_load(path.read_text())["output"]["warehouse"])))
    try:
        return con.execute("SELECT run_id FROM runs ORDER BY planned_at DESC LIMIT 1").fetchone()[0]
    finally:
        con.close()


def _assert_families_landed(run_id: str, wh: Path, expected: dict[str, str]) -> None:
    from pipelines.report import build_report
    from pipelines.validate import validate_run

    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute(
            "SELECT model_id, family, count(*) FROM generations WHERE run_id = ? GROUP BY ALL ORDER BY 1",
            [run_id],
        ).fetchall()
        assert {m: f for m, f, _ in rows} == expected and all(n == 8 for *_, n in rows)
        marts = con.execute(
            "SELECT family, model_id, count(*) FILTER (WHERE is_baseline), count(DISTINCT method) "
            "FROM mart_tradeoff WHERE run_id = ? AND rule = 'toy_red' GROUP BY ALL ORDER BY 2",
            [run_id],
        ).fetchall()
        assert [(m, f) for f, m, *_ in marts] == sorted(expected.items())
        assert all(
            n_base == 1 and n_methods == 2 for *_, n_base, n_methods in marts
        )  # one baseline per model
        (devices,) = con.execute("SELECT device FROM stg_runs WHERE run_id = ?", [run_id]).fetchone()
        assert devices == "cpu"
    finally:
        con.close()
    result = validate_run(str(wh), run_id)
    assert result["success"], result
    family = sorted(expected.values())[-1]
    report = build_report(str(wh), run_id, rule="toy_red", family=family)["tradeoff"]
    assert set(report["family"]) == {family} and report.height > 0


@pytest.mark.slow
def test_two_sd_models_through_safeaudit_run(tmp_path):
    """builtin:tiny and builtin:toy (both 'sd') in one run: rows per model with the family, one baseline
    and Pareto front per model in mart_tradeoff, validation passes, the report filters by family."""
    from models.components import TOY_MODEL_DIR

    if not (TOY_MODEL_DIR / "model_index.json").exists():
        pytest.skip("toy weights not trained (models/toy/weights)")
    run_id, wh = _run_and_check(tmp_path, TWO_SD)
    _assert_families_landed(run_id, wh, {"builtin:tiny": "sd", "builtin:toy": "sd"})


@pytest.mark.slow
@needs_14b
def test_two_families_through_safeaudit_run(tmp_path):
    """The tiny two-family spec's models (SD + SDXL) through `safeaudit run`."""
    models = yaml.safe_load((REPO / "runspecs" / "tiny_families.yaml").read_text())["models"]
    run_id, wh = _run_and_check(tmp_path, models)
    _assert_families_landed(run_id, wh, {"builtin:tiny": "sd", "builtin:tiny-sdxl": "sdxl"})


def test_a_run_generates_model_by_model_baselines_first(tmp_path):
    """One model's components in memory at a time; each model's baseline images before its other points."""
    from pipelines.contract import read_batch
    from pipelines.plan import plan_run
    from pipelines.runner import generation_order
    from pipelines.storage import Store

    out = {"artifacts": str(tmp_path / "art"), "warehouse": str(tmp_path / "wh.duckdb")}
    spec = _base(models=TWO_SD, output=out)
    spec["methods"] = [{"name": "negative_prompt", "levels": ["max"]}, {"name": "baseline"}]  # baseline last
    plan = plan_run(parse_spec(spec))
    store = Store(plan.artifacts)
    order = [
        read_batch(store, plan.run_id, b)
        for b in generation_order(plan.artifacts, plan.run_id, plan.batch_ids)
    ]
    keys = [(b.model.key, b.method.name) for b in order]
    expected = [("tiny", "baseline")] * 2 + [("tiny", "negative_prompt")] * 2  # batches of 2
    expected += [("toy", "baseline"), ("toy", "negative_prompt")]  # batches of 4
    assert keys == expected
