"""Run specs: a small, frozen, validated YAML description of one audit.

    YAML ──pydantic──▶ RunSpec (frozen) ──hash──▶ run_id ──plan──▶ batches

Unknown keys, unknown methods, levels, scorers or schedulers and bad types are errors that name the key
(``methods[2].levels[0]: unknown level 'strng' for method 'sld'``). The ``run_id`` is a hash of the
*resolved* spec (paths made absolute, prompt files' sha256 included), so the same spec on the same data is
the same run, and re-running it only skips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from models.registry import METHODS, SCHEDULERS, method_class
from pipelines.errors import SafeauditError, os_error
from pipelines.scorers import REGISTRY as SCORERS
from pipelines.specyaml import MAX_SPEC_BYTES, SpecYAMLError, load_bounded

MAX_SEED = 2**63  # seeds are stored as int64 (exclusive bound)
Seed = Annotated[int, Field(ge=0, lt=MAX_SEED)]
DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]{1,2})?|mps)$"

FAMILY_NAMES = ("sd", "sdxl", "sd3")
PROMPT_FORMATS = ("i2p", "unlearndiffatk", "coco", "sixcd_pair", "sixcd_benign", "single_column", "builtin")


def _known_scorer(name: str) -> str:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}")
    return name


class RunSpecError(SafeauditError, ValueError):
    """A run spec is invalid; the message is one line naming the file and the key."""


class _Frozen(BaseModel):
    # strict: `steps: true` is not 1 and `"8"` is not 8; no inf/nan anywhere (`knob: [inf]`)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SamplerSpec(_Frozen):
    scheduler: str = "ddim"
    steps: int = Field(20, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0.0, le=50.0)
    height: int = Field(64, ge=8, le=2048)
    width: int = Field(64, ge=8, le=2048)
    eta: float = Field(0.0, ge=0.0, le=1.0)
    negative_prompt: str = ""

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:  # the VAE's 8x factor: anything else fails inside the UNet after the plan is written
            raise ValueError(f"must be a multiple of 8, got {v}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {v!r}; choose one of {', '.join(SCHEDULERS)}")
        return v


class SamplerOverrides(_Frozen):
    """Per-model sampler settings: each given key replaces the run's ``sampler`` value for that model."""

    scheduler: str | None = None
    steps: int | None = Field(None, ge=1, le=1000)
    guidance: float | None = Field(None, ge=0.0, le=50.0)
    height: int | None = Field(None, ge=8, le=2048)
    width: int | None = Field(None, ge=8, le=2048)
    eta: float | None = Field(None, ge=0.0, le=1.0)
    negative_prompt: str | None = None

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        return v if v is None else SamplerSpec._multiple_of_8(v)

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str | None) -> str | None:
        return v if v is None else SamplerSpec._known_scheduler(v)


class ModelSpec(_Frozen):
    id: str = "builtin:toy"  # hub id, local diffusers folder, builtin:toy, builtin:tiny(-sdxl|-sd3)
    revision: str | None = None
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: str = Field("cpu", pattern=DEVICE_PATTERN)  # availability: pipelines.runner.check_device
    # 'sd' (1.x/2.x) | 'sdxl' | 'sd3': read from the model folder (or built-in) when it can be, and then
    # a given value must agree; a hub id that is not on disk takes the value given here
    family: Literal["sd", "sdxl", "sd3"] | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*$", max_length=64)
    batch_size: int | None = Field(None, ge=1, le=4096)  # this model's batches (default: the run's)
    sampler: SamplerOverrides = SamplerOverrides()  # this model's sampler settings over the run's

    @model_validator(mode="before")
    @classmethod
    def _family(cls, data: Any) -> Any:
        """Fill in the family (read from the model), so the resolved spec and its run id carry it."""
        if isinstance(data, dict) and data.get("family") in (None, *FAMILY_NAMES):
            from pipelines.families import resolve_family

            data = {**data, "family": resolve_family(str(data.get("id", "builtin:toy")), data.get("family"))}
        return data

    @property
    def key(self) -> str:
        """Short name of the model in batch ids and the dashboard: ``name``, else from the id."""
        if self.name:
            return self.name
        tail = self.id.removeprefix("builtin:").rstrip("/").rsplit("/", 1)[-1]
        return re.sub(r"[^A-Za-z0-9_.]+", "-", tail).strip("-")[:64] or "model"


class PromptSetSpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    builtin: str | None = None  # a built-in suite (see pipelines.prompts.BUILTIN)
    file: str | None = None  # a CSV in one of the published layouts
    twin_file: str | None = None  # Six-CD dual version: the clean twins of `file`'s malicious prompts
    format: (
        Literal["i2p", "unlearndiffatk", "coco", "sixcd_pair", "sixcd_benign", "single_column", "builtin"]
        | None
    ) = None
    column: str | None = None  # prompt column for single_column CSVs (Ring-A-Bell, MMA-Diffusion)
    categories: list[str] | None = None  # keep prompts in any of these categories
    hard_only: bool = False
    limit: int | None = Field(None, ge=1)
    role: Literal["unsafe", "benign", "proximal", "paired"] | None = None  # how marts read this set

    @model_validator(mode="after")
    def _one_source(self) -> PromptSetSpec:
        if (self.builtin is None) == (self.file is None):
            raise ValueError("give exactly one of 'builtin' or 'file'")
        if self.format == "sixcd_pair" and not self.twin_file:
            raise ValueError("format 'sixcd_pair' needs 'twin_file' (the clean twins)")
        if self.format == "single_column" and not self.column:
            raise ValueError("format 'single_column' needs 'column'")
        return self


class MethodSpec(_Frozen):
    name: str
    levels: list[str] = Field(default_factory=lambda: ["off"], max_length=64)
    knob: list[float] = Field(default_factory=list, max_length=256)  # extra points on the continuous knob
    overrides: dict[str, Any] = Field(default_factory=dict)  # typed against the method's config below
    label: str | None = None  # distinguishes two entries of one method (e.g. safe_denoiser on two bases)

    @field_validator("name")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in METHODS:
            raise ValueError(f"unknown method {v!r}; known: {', '.join(METHODS)}")
        return v

    @model_validator(mode="after")
    def _known_levels(self) -> MethodSpec:
        cls = method_class(self.name)
        for i, level in enumerate(self.levels):
            if level not in cls.LEVELS:
                raise ValueError(
                    f"levels[{i}]: unknown level {level!r} for method {self.name!r}; levels: {', '.join(cls.LEVELS)}"
                )
        if self.knob and cls.KNOB is None:
            raise ValueError(f"knob: method {self.name!r} has no continuous knob")
        if not self.levels and not self.knob:
            raise ValueError("@levels: empty: give at least one level (or knob value) to run")
        for key, value in self.overrides.items():
            check_override(self.name, key, value)
        return self


@cache
def _override_types(method: str) -> dict[str, Any]:
    config = method_class(method).Config
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


@cache
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp, config=ConfigDict(strict=True, allow_inf_nan=False))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_override(method: str, key: str, value: Any) -> None:
    """An override must name a field of the method's config dataclass and have that field's type."""
    types = _override_types(method)
    if key not in types:
        keys = ", ".join(sorted(types)) or "none"
        raise ValueError(f"@overrides.{key}: method {method!r} has no config key {key!r}; keys: {keys}")
    try:
        _adapter(types[key]).validate_python(value)
    except ValidationError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ValueError(f"@overrides.{key}: expected {_type_name(types[key])}, got {shown}") from None


class OutputSpec(_Frozen):
    artifacts: str = (
        "artifacts"  # local folder (or, on a cluster, any fsspec URL mounted the same on workers)
    )
    warehouse: str = "warehouse/safeaudit.duckdb"


class RunSpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    model: ModelSpec | None = None  # the model (builtin:toy when neither `model` nor `models` is given)
    models: list[ModelSpec] | None = None  # several models (e.g. one per family) audited in one run
    sampler: SamplerSpec = SamplerSpec()
    concept: str = "toy"  # concept pack name or YAML path
    prompt_sets: list[PromptSetSpec] = Field(min_length=1, max_length=256)
    images_per_prompt: int = Field(1, ge=1, le=100)
    # fixed seeds for every prompt, else the prompt's own seed (+k per image)
    seeds: list[Seed] | None = Field(None, min_length=1, max_length=10_000)
    default_seed: Seed = 42  # for prompts whose file has no seed column (SAFREE's convention)
    methods: list[MethodSpec] = Field(min_length=1, max_length=256)
    scorers: list[Annotated[str, AfterValidator(_known_scorer)]] = Field(
        default_factory=lambda: ["degenerate"]
    )
    batch_size: int = Field(16, ge=1, le=4096)
    output: OutputSpec = OutputSpec()
    tag: str | None = None  # e.g. the nightly date: same spec + new tag = a new run that reuses images

    @model_validator(mode="before")
    @classmethod
    def _one_model_key(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("model") is not None and data.get("models") is not None:
                raise ValueError("give 'model' (one) or 'models' (several), not both")
            if data.get("model") is None and data.get("models") is None:
                data = {**data, "model": {}}
        return data

    @property
    def all_models(self) -> tuple[ModelSpec, ...]:
        """The run's models in spec order (one for a `model:` spec)."""
        return tuple(self.models) if self.models is not None else (self.model,)

    def sampler_for(self, model: ModelSpec) -> SamplerSpec:
        """The run's sampler settings with the model's own overrides."""
        given = model.sampler.model_dump(exclude_none=True)
        return SamplerSpec.model_validate(self.sampler.model_dump() | given) if given else self.sampler

    @model_validator(mode="after")
    def _models_and_families(self) -> RunSpec:
        models = self.all_models
        if not models:
            raise ValueError("models: list at least one model")
        keys = [m.key for m in models]
        for i, key in enumerate(keys):
            if keys.index(key) != i:
                raise ValueError(f"models[{i}]: name {key!r} used twice; give each model a distinct 'name'")
        from pipelines.families import supports

        for j, m in enumerate(self.methods):
            for i, model in enumerate(models):
                if not supports(m.name, model.family):
                    where = f"models[{i}]" if self.models is not None else "model"
                    raise ValueError(
                        f"methods[{j}]: method {m.name!r} does not support family {model.family!r} "
                        f"({where}: {model.id})"
                    )
        return self

    @model_validator(mode="after")
    def _needs_baseline(self) -> RunSpec:

        names = [m.name for m in self.methods]
        if "baseline" not in names:
            raise ValueError("methods: include 'baseline' (every trade-off is measured against it)")
        seen = set()
        for m in self.methods:
            key = (m.name, m.label)
            if key in seen:
                raise ValueError(f"methods: {m.name!r} listed twice; give each entry a distinct 'label'")
            seen.add(key)
        names_ps = [p.name for p in self.prompt_sets]
        if len(set(names_ps)) != len(names_ps):
            raise ValueError("prompt_sets: names must be unique")
        return self


def _format_error(path: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ""
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    if msg.startswith("@") and ": " in msg:  # the validator names a key below its location
        sub, msg = msg[1:].split(": ", 1)
        loc += sub if sub.startswith("[") or not loc else f".{sub}"
    if err["type"] in ("int_type", "float_type", "bool_type", "string_type", "list_type", "dict_type"):
        shown = repr(err.get("input"))
        msg += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return f"{path}: {loc or 'spec'}: {msg}"


def parse_spec(data: dict[str, Any], source: str = "<spec>") -> RunSpec:
    if not isinstance(data, dict):
        raise RunSpecError(f"{source}: a run spec must be a YAML mapping")
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as exc:
        raise RunSpecError(_format_error(source, exc)) from None
    from pipelines.requirements import check_data  # data the methods need (issue 17): fail before planning

    return check_data(spec, source)


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> RunSpec:
    """Read and validate a YAML run spec. Relative file paths in it are resolved against its folder."""
    path = Path(path)
    if not path.exists():
        raise RunSpecError(f"{path}: run spec not found")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise RunSpecError(f"{path}: run spec larger than {MAX_SPEC_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RunSpecError(os_error(exc, path, "cannot read run spec")) from None
    except UnicodeDecodeError as exc:
        raise RunSpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = load_bounded(text)
    except SpecYAMLError as exc:
        where = f" line {exc.line}" if exc.line else ""
        raise RunSpecError(f"{path}:{where} {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RunSpecError(
            f"{path}:{where} malformed YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None
    if isinstance(data, dict):
        data = {**data, **(overrides or {})}
        base = path.resolve().parent
        for ps in data.get("prompt_sets") or []:
            if isinstance(ps, dict):
                for key in ("file", "twin_file"):
                    if isinstance(ps.get(key), str) and not Path(ps[key]).is_absolute():
                        ps[key] = str((base / ps[key]).resolve())
    return parse_spec(data, str(path))


def spec_hash(spec: RunSpec, extra: dict[str, Any] | None = None) -> str:
    blob = json.dumps({"spec": spec.model_dump(mode="json"), "extra": extra or {}}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def run_id_for(spec: RunSpec, extra: dict[str, Any] | None = None) -> str:
    """``<name>-<12 hex>``: readable, and a pure function of the resolved spec (+ the data's hashes)."""
    return f"{spec.name}-{spec_hash(spec, extra)[:12]}"
