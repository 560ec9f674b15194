"""Expand a run spec into small batch specs, deterministically.

    spec ─▶ prompts × images per prompt ─▶ × method points (method, level | knob value) ─▶ batches

    spec ─▶ × models (``models:``; each with its family, sampler settings and batch size)

Each item gets its ``generation_id``: a content hash of everything that determines the image (model id,
revision and dtype; sampler settings; the method's resolved config, which records what it read from the
concept pack; the prompt text; the seed). An item whose generation id is already in the warehouse with its
image still in the store is *reused*, not regenerated: that is what makes nightly audits incremental.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.contract import (
    BatchSpec,
    ConceptSnapshot,
    ModelContract,
    Plan,
    method_contract,
    write_plan,
)
from pipelines.prompts import Prompt, load_prompt_set

if TYPE_CHECKING:
    from models.concepts import ConceptPack
    from models.method import SafetyMethod
from pipelines.reuse import reusable
from pipelines.runspec import RunSpec, run_id_for, spec_hash
from pipelines.storage import Store

SAMPLER_VERSION = "1"  # bump when the shared loop changes what an image is


@dataclass(frozen=True)
class MethodPoint:
    method: str
    label: str | None
    level: str
    knob: float | None
    overrides: tuple[tuple[str, Any], ...]

    @property
    def key(self) -> str:
        name = self.method if not self.label else f"{self.method}.{self.label}"
        point = self.level if self.knob is None else f"knob{self.knob:g}"
        return f"{name}-{point}"


def method_points(spec: RunSpec) -> list[MethodPoint]:
    points = []
    for m in spec.methods:
        ov = tuple(sorted(m.overrides.items()))
        points += [MethodPoint(m.name, m.label, lvl, None, ov) for lvl in m.levels]
        points += [MethodPoint(m.name, m.label, "knob", float(k), ov) for k in m.knob]
    return points


def build_point(point: MethodPoint, concept: ConceptPack | None) -> SafetyMethod:
    from models.registry import build_method

    level = "off" if point.knob is not None and point.level == "knob" else point.level
    return build_method(
        point.method, level=level, knob=point.knob, overrides=dict(point.overrides), concept=concept
    )


def generation_id(
    model: ModelContract,
    resolved_method: dict[str, Any],
    prompt: str,
    seed: int,
    model_key: str | None = None,
) -> str:
    """Content hash of everything that determines the image (``model_key``: the model id as hashed)."""
    blob = {
        "model": {"id": model_key or _model_key(model.id), "revision": model.revision, "dtype": model.dtype},
        "sampler": model.sampler.model_dump(mode="json"),
        "sampler_version": SAMPLER_VERSION,
        "method": resolved_method,
        "prompt": prompt,
        "seed": int(seed),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _model_key(mid: str) -> str:
    from models.components import resolve_model

    if mid.startswith("builtin:") or "/" not in mid or not Path(mid).exists():
        return mid
    return resolve_model(mid)[0]


def model_contracts(spec: RunSpec) -> list[ModelContract]:
    """The models the run samples with, each resolved (family, its sampler settings and batch size)."""
    return [
        ModelContract(
            key=m.key,
            id=m.id,
            revision=m.revision,
            dtype=m.dtype,
            device=m.device,
            family=m.family,
            sampler=spec.sampler_for(m),
            batch_size=m.batch_size or spec.batch_size,
        )
        for m in spec.all_models
    ]


def load_prompts(spec: RunSpec, concept_name: str) -> list[Prompt]:
    out: list[Prompt] = []
    for ps in spec.prompt_sets:
        out += load_prompt_set(ps, default_concept=concept_name)
    return out


def seeds_for(spec: RunSpec, prompt: Prompt) -> list[int]:
    if spec.seeds is not None:
        return [int(s) for s in spec.seeds][: max(spec.images_per_prompt, len(spec.seeds))]
    base = prompt.seed if prompt.seed is not None else spec.default_seed
    return [int(base) + k for k in range(spec.images_per_prompt)]


def _batch_prefix(model: ModelContract, models: list[ModelContract]) -> str:
    """``<model>--`` before the method point in batch ids of a run with several models (one model: none,
    so a single-model run's batch ids are what they always were)."""
    return f"{model.key}--" if len(models) > 1 else ""


def plan_run(spec: RunSpec, check_images: bool = True) -> Plan:
    """Write one batch spec per batch and then plan.json; return the plan.

    Each batch records the model it runs on, its method point's resolved config and hash, and the concept
    pack as read here (``pipelines.contract``): the worker runs exactly that.
    """
    from models.concepts import load_pack

    pack = load_pack(spec.concept)
    concept = ConceptSnapshot.of(pack)
    prompts = load_prompts(spec, pack.name)
    data_hashes = sorted({p.source_sha256 for p in prompts if p.source_sha256})
    run_id = run_id_for(spec, {"data": data_hashes, "pack": pack.content_hash, "sampler": SAMPLER_VERSION})
    store = Store(spec.output.artifacts)

    points = method_points(spec)
    methods = [(point, build_point(point, pack)) for point in points]
    baseline_cfg = build_point(MethodPoint("baseline", None, "off", None, ()), None).resolved_config()
    roles = {ps.name: ps.role for ps in spec.prompt_sets}
    models = model_contracts(spec)

    batches: list[dict[str, Any]] = []  # BatchSpec fields, items as dicts until reuse is known
    for model in models:
        key = _model_key(model.id)
        prefix = _batch_prefix(model, models)
        for point, method in methods:
            contract = method_contract(point, method)
            seen: set[str] = set()
            items = []
            for p in prompts:
                for k, seed in enumerate(seeds_for(spec, p)):
                    gid = generation_id(model, contract.resolved, p.text, seed, key)
                    if gid in seen:  # the same prompt text in two sets: one image serves both
                        continue
                    seen.add(gid)
                    items.append(
                        {
                            "generation_id": gid,
                            "prompt_id": p.prompt_id,
                            "prompt": p.text,
                            "prompt_set": p.prompt_set,
                            "categories": list(p.categories),
                            "seed": seed,
                            "image_index": k,
                            "baseline_generation_id": generation_id(model, baseline_cfg, p.text, seed, key),
                            "meta": p.meta,
                        }
                    )
            for start in range(0, len(items), model.batch_size):
                chunk = items[start : start + model.batch_size]
                digest = hashlib.sha256(
                    (run_id + prefix + point.key + "".join(i["generation_id"] for i in chunk)).encode()
                )
                batch_id = f"{prefix}{point.key}-{digest.hexdigest()[:10]}"
                batches.append(
                    {
                        "batch_id": batch_id,
                        "run_id": run_id,
                        "model": model,
                        "method": contract,
                        "concept": concept,
                        "items": chunk,
                    }
                )

    all_items = [i for b in batches for i in b["items"]]
    # a stored copy in a run that is not quarantined, whose file (check_images) still hashes as stored
    reuse = reusable(spec.output.warehouse, [i["generation_id"] for i in all_items], check_files=check_images)
    images: dict[str, str] = {}
    specs: list[BatchSpec] = []
    for b in batches:
        for item in b["items"]:
            r = reuse.get(item["generation_id"])
            item["reuse"] = r  # None, or {"image_uri", "image_sha256"}
            images[item["generation_id"]] = (
                r["image_uri"]
                if r
                else store.uri(run_id, b["batch_id"], "images", f"{item['generation_id']}.png")
            )
        specs.append(BatchSpec.model_validate(b))

    plan = Plan(
        run_id=run_id,
        name=spec.name,
        tag=spec.tag,
        spec=spec,
        spec_sha256=spec_hash(spec),
        concept_pack=pack.pack_id,
        concept_sha=pack.content_hash,
        artifacts=spec.output.artifacts,
        warehouse=spec.output.warehouse,
        code_version=code_version(),
        planner=platform.node(),
        prompts=[p.as_row() | {"set_role": roles.get(p.prompt_set)} for p in prompts],
        batch_ids=[b.batch_id for b in specs],
        n_expected=len(all_items),
        n_reused=sum(1 for i in all_items if i.get("reuse")),
        images=images,
    )
    write_plan(store, plan, specs)
    return plan


def code_version() -> str:
    """The git commit of this checkout when there is one, else the package version."""
    root = Path(__file__).resolve().parent.parent
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref:"):
            ref_path = root / ".git" / ref.split(" ", 1)[1]
            if ref_path.exists():
                return ref_path.read_text().strip()[:12]
            packed = root / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.exists() else []:
                if line.endswith(ref.split(" ", 1)[1]):
                    return line.split()[0][:12]
        return ref[:12]
    except OSError:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("safeaudit")
        except PackageNotFoundError:
            return os.environ.get("SAFEAUDIT_VERSION", "unknown")
