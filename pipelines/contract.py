"""The plan → worker contract: typed, frozen models of what the planner decided and every worker reads.

    plan_run ──▶ Plan (plan.json) + one BatchSpec per batch (batches/<batch_id>.json)
                                         │
    worker ──▶ read_batch ──▶ method_for_batch: the method built from the batch's *stored* resolved config
                                                and concept snapshot, its hash checked against the plan's

A batch carries everything that determines its images: the model (id, revision, dtype, family), the
sampler settings, the method's resolved config and hash, and the concept pack as the planner read it. The
worker never re-reads a concept pack from disk, so editing one between plan and generate (or between the
nightly plan and a retried task) cannot change an image under its old generation id. What the worker
cannot take from the plan (the code, files a method reads at run time such as the Safe Denoiser's
negation images) is checked: a method whose config hash is not the planned one is refused, with one line
naming the batch. Files are ``model_dump(mode="json")``: readable JSON, validated (extra keys forbidden)
when read, so a renamed key fails where it is read, naming the key.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.runspec import RunSpec, SamplerSpec
from pipelines.storage import Store

if TYPE_CHECKING:
    from models.concepts import ConceptPack
    from models.method import SafetyMethod
    from pipelines.plan import MethodPoint

CONTRACT_VERSION = 1  # bump when a field changes meaning; old plan files need not load


class ContractError(ValueError):
    """A plan or batch file is unreadable, or a batch cannot be run as planned (one line)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reuse(_Frozen):
    """An image already in the warehouse under the same generation id (not regenerated)."""

    image_uri: str
    image_sha256: str


class Item(_Frozen):
    """One image to make: a prompt and seed under the batch's model and method point."""

    generation_id: str
    prompt_id: str
    prompt: str
    prompt_set: str
    categories: tuple[str, ...] = ()
    seed: int
    image_index: int
    baseline_generation_id: str
    meta: dict[str, Any] = Field(default_factory=dict)
    reuse: Reuse | None = None


class ConceptSnapshot(_Frozen):
    """The concept pack exactly as the planner read it (its fields and content hash)."""

    pack_id: str
    content_hash: str
    fields: dict[str, Any]

    @classmethod
    def of(cls, pack: ConceptPack) -> ConceptSnapshot:
        data = {k: v for k, v in dataclasses.asdict(pack).items() if k != "source"}
        return cls(pack_id=pack.pack_id, content_hash=pack.content_hash, fields=data)

    def pack(self) -> ConceptPack:
        """The pack rebuilt from the snapshot (no file read); its content hash is the planned one."""
        from models.concepts import ConceptPack

        data = dict(self.fields)
        data["safree_keywords"] = tuple(data.get("safree_keywords") or ())
        data["negative_prompt_levels"] = {
            k: tuple(v) for k, v in (data.get("negative_prompt_levels") or {}).items()
        }
        pack = ConceptPack(**data, source=f"snapshot of {self.pack_id}")
        if pack.content_hash != self.content_hash:
            raise ContractError(
                f"concept snapshot {self.pack_id}: content hash {pack.content_hash} != planned {self.content_hash}"
            )
        return pack


class ModelContract(_Frozen):
    """The model one batch runs on, resolved: what the worker loads and how it samples."""

    key: str  # the model's short name in the run (batch ids, the dashboard)
    id: str
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    family: str  # 'sd' | 'sdxl' | 'sd3'
    sampler: SamplerSpec
    batch_size: int = Field(ge=1)


class MethodContract(_Frozen):
    """One method point, resolved: the config the planner built (hashed into every generation id)."""

    name: str
    label: str | None = None
    level: str  # the spec's level, or "knob" for a knob point
    knob: float | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any]  # the method's config dataclass as a dict (what the worker constructs)
    method_level: str  # the method object's level label ("off", "strong", "eta=4")
    resolved: dict[str, Any]  # method.resolved_config(): config + what it read from the concept pack
    config_hash: str


class BatchSpec(_Frozen):
    """One worker task: everything that determines its images, and the items."""

    contract_version: int = CONTRACT_VERSION
    batch_id: str
    run_id: str
    model: ModelContract
    method: MethodContract
    concept: ConceptSnapshot
    items: tuple[Item, ...]

    @property
    def holds_baselines(self) -> bool:
        return any(i.generation_id == i.baseline_generation_id for i in self.items)


class PlanPrompt(_Frozen):
    """A prompt of the run as the loader writes it to ``run_prompts`` (one row per set and line)."""

    prompt_set: str
    set_role: str | None = None
    prompt_id: str
    prompt: str
    categories: tuple[str, ...] = ()
    seed: int | None = None
    hard: bool = False
    guidance: float | None = None
    source_file: str | None = None
    source_sha256: str | None = None
    line: int | None = None
    case_number: str | None = None
    pair_id: str | None = None
    pair_role: str | None = None
    meta: str = "{}"  # JSON text, as stored


class Plan(_Frozen):
    """The expanded run: the validated spec, what it read (concept, data hashes) and its batches."""

    contract_version: int = CONTRACT_VERSION
    run_id: str
    name: str
    tag: str | None = None
    spec: RunSpec
    spec_sha256: str
    concept_pack: str
    concept_sha: str
    artifacts: str
    warehouse: str
    code_version: str
    planner: str
    prompts: tuple[PlanPrompt, ...]
    batch_ids: tuple[str, ...]
    n_expected: int
    n_reused: int
    images: dict[str, str]  # generation id -> image uri (new or reused): fidelity scorers find baselines

    def summary(self) -> dict[str, Any]:
        """The XCom- and CLI-sized part of the plan."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "tag": self.tag,
            "n_expected": self.n_expected,
            "n_reused": self.n_reused,
            "batches": len(self.batch_ids),
        }


# -- files --------------------------------------------------------------------------------------------------
def plan_path(store: Store, run_id: str) -> str:
    return store.path(run_id, "plan.json")


def batch_spec_path(store: Store, run_id: str, batch_id: str) -> str:
    return store.path(run_id, "batches", f"{batch_id}.json")


def write_plan(store: Store, plan: Plan, batches: list[BatchSpec]) -> None:
    """Batch specs first, the plan last: a plan file means its batches are all there."""
    for b in batches:
        store.write_json(batch_spec_path(store, plan.run_id, b.batch_id), b.model_dump(mode="json"))
    store.write_json(plan_path(store, plan.run_id), plan.model_dump(mode="json"))


def _read(store: Store, path: str, model: type[_Frozen], what: str):
    try:
        data = store.read_json(path)
    except FileNotFoundError:
        raise ContractError(f"{what}: {path} not found (plan the run first)") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "file"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ContractError(f"{what}: {path}: {loc}: {msg} (written by another version? re-plan)") from None


def read_plan(store: Store, run_id: str) -> Plan:
    return _read(store, plan_path(store, run_id), Plan, f"run {run_id}")


def read_batch(store: Store, run_id: str, batch_id: str) -> BatchSpec:
    return _read(store, batch_spec_path(store, run_id, batch_id), BatchSpec, f"batch {batch_id}")


# -- the method, as planned ------------------------------------------------------------------------------
def method_contract(point: MethodPoint, method: SafetyMethod) -> MethodContract:
    """What the planner records for one method point and the method object it built."""
    return MethodContract(
        name=point.method,
        label=point.label,
        level=point.level,
        knob=point.knob,
        overrides=dict(point.overrides),
        config=method.config.as_dict(),
        method_level=method.level,
        resolved=method.resolved_config(),
        config_hash=method.config_hash(),
    )


def method_for_batch(batch: BatchSpec) -> SafetyMethod:
    """Build the batch's method from its stored config and concept snapshot; refuse it if its config hash
    (which also covers the method's code version and what it reads at run time) is not the planned one."""
    from models.registry import method_class

    m = batch.method
    pack = batch.concept.pack()
    cls = method_class(m.name)
    try:
        config = cls.Config(**m.config)
        method = cls(config=config, concept=pack, level=m.method_level)
        got = method.config_hash()
    except (TypeError, ValueError) as exc:
        raise ContractError(
            f"batch {batch.batch_id}: cannot build {m.name} from its planned config ({str(exc).splitlines()[0]}); "
            "re-plan the run"
        ) from None
    if got != m.config_hash:
        raise ContractError(
            f"batch {batch.batch_id}: {m.name} would run config {got}, planned {m.config_hash} (its code or "
            "the data it reads changed since the plan); re-plan the run"
        )
    return method
