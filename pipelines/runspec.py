"""Run specs: a small, frozen, validated YAML description of one audit.

    YAML ──pydantic──▶ RunSpec (frozen) ──hash──▶ run_id ──plan──▶ batches

Unknown keys, unknown methods, levels, scorers or schedulers and bad types are errors that name the key
(``methods[2].levels[0]: unknown level 'strng' for method 'sld'``). The ``run_id`` is a hash of the
*resolved* spec (paths made absolute, prompt files' sha256 included), so the same spec on the same data is
the same run, and re-running it only skips.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.registry import METHODS, SCHEDULERS, method_class
from pipelines.scorers import REGISTRY as SCORERS

PROMPT_FORMATS = ("i2p", "unlearndiffatk", "coco", "sixcd_pair", "sixcd_benign", "single_column", "builtin")


def _known_scorer(name: str) -> str:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}")
    return name


class RunSpecError(ValueError):
    """A run spec is invalid; the message is one line naming the file and the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Frozen):
    id: str = "builtin:toy"  # hub id, local diffusers folder, builtin:toy or builtin:tiny
    revision: str | None = None
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: str = "cpu"


class SamplerSpec(_Frozen):
    scheduler: str = "ddim"
    steps: int = Field(20, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0.0, le=50.0)
    height: int = Field(64, ge=8, le=2048)
    width: int = Field(64, ge=8, le=2048)
    eta: float = Field(0.0, ge=0.0, le=1.0)
    negative_prompt: str = ""

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {v!r}; choose one of {', '.join(SCHEDULERS)}")
        return v


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
    levels: list[str] = Field(default_factory=lambda: ["off"])
    knob: list[float] = Field(default_factory=list)  # extra points on the continuous knob
    overrides: dict[str, Any] = Field(default_factory=dict)
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
        return self


class OutputSpec(_Frozen):
    artifacts: str = (
        "artifacts"  # local folder (or, on a cluster, any fsspec URL mounted the same on workers)
    )
    warehouse: str = "warehouse/safeaudit.duckdb"


class RunSpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    model: ModelSpec = ModelSpec()
    sampler: SamplerSpec = SamplerSpec()
    concept: str = "toy"  # concept pack name or YAML path
    prompt_sets: list[PromptSetSpec]
    images_per_prompt: int = Field(1, ge=1, le=100)
    seeds: list[int] | None = None  # fixed seeds for every prompt, else the prompt's own seed (+k per image)
    default_seed: int = 42  # for prompts whose file has no seed column (SAFREE's convention)
    methods: list[MethodSpec]
    scorers: list[Annotated[str, AfterValidator(_known_scorer)]] = Field(
        default_factory=lambda: ["degenerate"]
    )
    batch_size: int = Field(16, ge=1, le=4096)
    output: OutputSpec = OutputSpec()
    tag: str | None = None  # e.g. the nightly date: same spec + new tag = a new run that reuses images

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
        data = yaml.safe_load(path.read_text())
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
