"""The plan → worker contract (issue 13, item 1): what the plan decided is what the worker runs.

The plan stores each point's resolved method config and the concept pack it read; the worker builds the
method from that, never from files that may have changed since, and refuses (one line naming the batch) a
batch whose stored config hash is not what it would run. Real planner, real tiny model, real files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from models.concepts import PACK_DIR, REPO_ROOT
from pipelines.contract import BatchSpec, ContractError, Plan, method_for_batch, read_batch, read_plan
from pipelines.generate import generate_batch
from pipelines.plan import plan_run
from pipelines.runspec import parse_spec
from pipelines.storage import Store


def _pack(tmp: Path, **changes) -> Path:
    """A copy of the toy concept pack (negation set as an absolute path), with ``changes`` applied."""
    pack = yaml.safe_load((PACK_DIR / "toy.yaml").read_text())
    if (REPO_ROOT / pack["negation_set"]).exists():  # a folder path, made absolute; a set name stays a name
        pack["negation_set"] = str(REPO_ROOT / pack["negation_set"])
    pack.update(changes)
    path = tmp / "pack.yaml"
    path.write_text(yaml.safe_dump(pack))
    return path


def _spec(tmp: Path, pack: Path, methods: list[dict], out: str):
    return parse_spec(
        {
            "name": "contract",
            "model": {"id": "builtin:tiny"},
            "sampler": {"scheduler": "ddim", "steps": 2},
            "concept": str(pack),
            "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 2, "role": "benign"}],
            "methods": methods,
            "scorers": [],
            "batch_size": 4,
            "output": {"artifacts": str(tmp / out), "warehouse": str(tmp / f"{out}.duckdb")},
        }
    )


def _generate_all(plan) -> dict[str, str]:
    """Generate every batch of a plan; return {generation_id: sha256 of its PNG}."""
    out = {}
    for batch_id in plan.batch_ids:
        generate_batch(plan.artifacts, plan.run_id, batch_id)
        folder = Path(plan.artifacts) / plan.run_id / batch_id / "images"
        for png in folder.glob("*.png"):
            out[png.stem] = hashlib.sha256(png.read_bytes()).hexdigest()
    return out


NEG_AND_SLD = [
    {"name": "baseline"},
    {"name": "negative_prompt", "levels": ["max"]},
    {"name": "sld", "levels": ["max"]},
]


def test_concept_pack_edited_between_plan_and_generate(tmp_path):
    """Edit the pack after planning: every image still matches its generation id (the worker runs the
    plan's snapshot of the pack), or the batch is refused; never silently different images."""
    pack = _pack(tmp_path)
    reference = plan_run(_spec(tmp_path, pack, NEG_AND_SLD, "reference"))
    planned = plan_run(_spec(tmp_path, pack, NEG_AND_SLD, "edited"))
    expected = _generate_all(reference)  # what the ids were planned for
    assert {i.generation_id for i in _items(reference)} == {i.generation_id for i in _items(planned)}

    _pack(  # the edit: other keywords, another SLD concept (what a curator might do overnight)
        tmp_path,
        sld_concept="blue, navy",
        negative_prompt_levels={"max": ["blue", "green", "yellow"]},
    )
    try:
        got = _generate_all(planned)
    except ContractError as exc:  # refusing is allowed: one line, naming the batch
        assert "\n" not in str(exc) and any(b in str(exc) for b in planned.batch_ids)
        return
    assert got.keys() == expected.keys()
    changed = sorted(g for g in got if got[g] != expected[g])
    assert not changed, f"{len(changed)} images no longer match their generation ids"


def _items(plan: Plan):
    store = Store(plan.artifacts)
    return [i for b in plan.batch_ids for i in read_batch(store, plan.run_id, b).items]


def test_the_plan_pins_the_negation_set_version_the_worker_runs(tmp_path):
    """Safe Denoiser reads its negation set at run time. Validation pins the pack's set *name* to the exact
    version for the run's model and size (``name@hash``), the batch carries it, and the worker runs that
    version: a newer set of the same name made after planning cannot change the planned images."""
    from models.negation import list_artifacts

    methods = [{"name": "baseline"}, {"name": "safe_denoiser", "levels": ["strong"]}]
    plan = plan_run(_spec(tmp_path, _pack(tmp_path), methods, "art"))
    sd = [b for b in plan.batch_ids if b.startswith("safe_denoiser")]
    batch = read_batch(Store(plan.artifacts), plan.run_id, sd[0])
    want = next(m for m in list_artifacts() if m["name"] == "toy_red" and m["model_key"] == "builtin:tiny")
    assert batch.method.config["negation_set"] == f"toy_red@{want['set_hash']}"
    assert batch.method.resolved["concept"]["negation_hash"] == want["set_hash"]
    generate_batch(plan.artifacts, plan.run_id, sd[0])
    rows = Store(plan.artifacts).read_table(
        f"{Store(plan.artifacts).batch_dir(plan.run_id, sd[0])}/generations.parquet"
    )
    assert set(rows.column("negation_set").to_pylist()) == {want["set_hash"]}
    diags = [json.loads(d) for d in rows.column("diagnostics").to_pylist()]
    assert {d["sd_negation_set"] for d in diags} == {want["set_hash"]}


def test_tampered_config_hash_is_refused(tmp_path):
    plan = plan_run(_spec(tmp_path, _pack(tmp_path), [{"name": "baseline"}], "art"))
    store = Store(plan.artifacts)
    path = Path(store.path(plan.run_id, "batches", f"{plan.batch_ids[0]}.json"))
    batch = json.loads(path.read_text())
    batch["method"]["config_hash"] = "0" * 16
    path.write_text(json.dumps(batch))
    with pytest.raises(ContractError, match=plan.batch_ids[0]):
        generate_batch(plan.artifacts, plan.run_id, plan.batch_ids[0])


def test_renamed_key_in_a_batch_fails_when_read(tmp_path):
    """The batch file is a typed model: a renamed key is an error naming it, not a KeyError mid-run."""
    plan = plan_run(_spec(tmp_path, _pack(tmp_path), [{"name": "baseline"}], "art"))
    store = Store(plan.artifacts)
    path = Path(store.path(plan.run_id, "batches", f"{plan.batch_ids[0]}.json"))
    batch = json.loads(path.read_text())
    batch["model"]["model_id"] = batch["model"].pop("id")
    path.write_text(json.dumps(batch))
    with pytest.raises(ContractError, match=r"model\.id"):
        read_batch(store, plan.run_id, plan.batch_ids[0])
    assert isinstance(read_plan(store, plan.run_id), Plan)


def test_every_method_level_rebuilds_to_its_planned_hash(tmp_path):
    """No false refusals: for every registered method and level (and a knob point), the method the worker
    builds from the stored contract has exactly the planned config hash."""
    from models.registry import METHODS, method_class

    methods = []
    for name in METHODS:
        cls = method_class(name)
        entry = {"name": name, "levels": list(cls.LEVELS)}
        if cls.KNOB is not None and cls.KNOB_VALUES:
            entry["knob"] = [cls.KNOB_VALUES[-1]]
        methods.append(entry)
    spec = _spec(tmp_path, _pack(tmp_path), methods, "art")
    plan = plan_run(spec)
    store = Store(plan.artifacts)
    seen = set()
    for batch_id in plan.batch_ids:
        batch: BatchSpec = read_batch(store, plan.run_id, batch_id)
        method = method_for_batch(batch)
        assert method.config_hash() == batch.method.config_hash
        seen.add(batch.method.name)
    assert seen == set(METHODS)
