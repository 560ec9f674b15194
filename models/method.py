"""The contract between the shared sampler and a safety method.

A method is a configured object (a frozen config dataclass whose defaults are the paper's) that overrides
only the hooks it needs. The base class *is* plain Stable Diffusion, so a method that overrides nothing
reproduces the baseline, and ``off`` levels can route through the same code.

Hooks, in the order the sampler calls them (docs/specs/methods.md §5):

- ``setup(ctx)``            once per call: encode extra texts, replace the unconditional branch, precompute;
- ``unet_inputs(ctx, i, t, z)`` → (latent rows, text rows, extra): the conditioning batch for one denoiser
                            call; ``extra`` is the rows' non-token conditioning (SDXL pooled embeds and
                            time ids, SD3 pooled projections; ``{}`` on SD), built with
                            ``ctx.extra_rows([pooled of each text-row group])``;
- ``guide(ctx, i, t, eps_rows)`` → ε̃: combine the branch predictions (CFG by default);
- ``step(ctx, i, t, z, ε̃)`` → z_{t-1}: advance the latents (x̂0 or latent edits go here);
- ``unet_hooks(ctx)``       a context manager around the loop for UNet feature hooks; it must restore
                            every processor or hook it installs (``finally``), so shared components are
                            never left changed;
- ``finish(ctx)``           once per call: write per-image diagnostics into ``ctx.diagnostics``.

Per-call state goes into ``ctx.state``, never onto the method object.

Model families: ``ctx.family`` is 'sd', 'sdxl' or 'sd3'. Each class declares ``FAMILIES``, the families it
supports and how: 'release' (follows the authors' code for that family) or 'ours' (our extension, not in
the authors' release). A method that does not declare them runs on SD only (fail closed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from models.concepts import ConceptPack

if TYPE_CHECKING:
    from models.sampler import Context

STANDARD_LEVELS = ("off", "weak", "medium", "strong", "max")


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's config; subclasses add fields with the paper's defaults."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SafetyMethod:
    """Plain Stable Diffusion with classifier-free guidance; subclasses override hooks."""

    name: ClassVar[str] = "baseline"
    version: ClassVar[str] = "1"  # bump when the meaning of a config or the algorithm changes
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {"off": {}}
    KNOB: ClassVar[str | None] = None  # the config field that is the continuous strength knob
    KNOB_VALUES: ClassVar[tuple[float, ...]] = ()  # a sensible sweep for trade-off curves
    provisional: ClassVar[bool] = False
    # family → 'release' (the authors' code covers it) | 'ours' (our extension); absent = unsupported
    FAMILIES: ClassVar[dict[str, str]] = {"sd": "release"}
    # Worst |Δ| (grey levels) between a batched and a one-request call: batched float kernels round
    # differently; a method whose gain amplifies rounding states its own measured worst case.
    batch_tolerance: ClassVar[int] = 1

    def __init__(
        self, config: MethodConfig | None = None, concept: ConceptPack | None = None, level: str = "off"
    ):
        self.config = config if config is not None else self.Config()
        self.concept = concept
        self.level = level

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_level(
        cls,
        level: str = "off",
        knob: float | None = None,
        overrides: dict[str, Any] | None = None,
        concept: ConceptPack | None = None,
    ) -> SafetyMethod:
        """Config = paper defaults ← level preset ← knob value ← explicit overrides."""
        if level not in cls.LEVELS:
            raise ValueError(f"method {cls.name!r} has no level {level!r}; levels: {', '.join(cls.LEVELS)}")
        values: dict[str, Any] = dict(cls.LEVELS[level])
        if knob is not None:
            if cls.KNOB is None:
                raise ValueError(f"method {cls.name!r} has no continuous knob")
            values.update(cls.knob_to_config(float(knob)))
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        for key in overrides or {}:
            if key not in fields:
                raise ValueError(
                    f"method {cls.name!r} has no config key {key!r}; keys: {', '.join(sorted(fields))}"
                )
        values.update(overrides or {})
        config = cls.Config(**values)
        return cls(config=config, concept=concept, level=level if knob is None else f"{cls.KNOB}={knob:g}")

    @classmethod
    def knob_to_config(cls, value: float) -> dict[str, Any]:
        """Map the continuous knob to config values; by default the knob is one config field."""
        return {cls.KNOB: value}

    def resolved_config(self) -> dict[str, Any]:
        """Everything that determines this method's effect, JSON-able; hashed into the generation id."""
        out = {"method": self.name, "method_version": self.version, "config": self.config.as_dict()}
        out["concept"] = self.concept_fields()
        return out

    def concept_fields(self) -> dict[str, Any]:
        """The parts of the concept pack this method reads (recorded verbatim, e.g. SLD's concept text)."""
        return {}

    def config_hash(self) -> str:
        blob = json.dumps(self.resolved_config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def is_off(self) -> bool:
        """True when this configuration is the baseline by construction."""
        return self.level == "off"

    def family_error(self, family: str) -> str | None:
        """Why this configured method cannot run on ``family`` (one line naming both), or None. The class's
        FAMILIES decide; a method whose config rules a family out (a UNet-only hook on SD3) says so here."""
        if family in self.FAMILIES:
            return None
        return f"method {self.name!r} does not support model family {family!r} (supported: {', '.join(self.FAMILIES)})"

    # -- hooks ----------------------------------------------------------------------------------------
    def setup(self, ctx: Context) -> None:
        return None

    def unet_inputs(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        if not ctx.do_cfg:
            return latents, ctx.cond, ctx.cfg_extra_rows()
        return torch.cat([latents, latents]), ctx.cfg_text_rows(), ctx.cfg_extra_rows()

    def guide(self, ctx: Context, i: int, t: torch.Tensor, eps_rows: torch.Tensor) -> torch.Tensor:
        if not ctx.do_cfg:
            return eps_rows
        eps_uncond, eps_text = eps_rows.chunk(2)
        return eps_uncond + ctx.settings.guidance * (eps_text - eps_uncond)  # classifier-free guidance

    def step(
        self, ctx: Context, i: int, t: torch.Tensor, latents: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        return ctx.scheduler_step(eps, t, latents).prev_sample

    @contextlib.contextmanager
    def unet_hooks(self, ctx: Context) -> Iterator[None]:
        yield

    def finish(self, ctx: Context) -> None:
        return None

    # -- data requirements (run-spec validation, before anything is generated) --------------------------
    def missing_data(self, model: str, height: int, width: int) -> str | None:
        """Why this configuration cannot run with its concept data on (model, size), as one line; else None."""
        return None

    # -- introspection for `safeaudit methods` ---------------------------------------------------------
    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "method": cls.name,
            "version": cls.version,
            "levels": list(cls.LEVELS),
            "knob": cls.KNOB,
            "knob_values": list(cls.KNOB_VALUES),
            "defaults": cls.Config().as_dict(),
            "provisional": cls.provisional,
            "families": dict(cls.FAMILIES),
        }
