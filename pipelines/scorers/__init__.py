"""Scorer registry. Keys map to lazy ``"module:Class"`` strings so listing scorers imports no model code.

Every line is real: a line whose target does not import raises ``RegistryError`` naming the line
(tests/scorers/test_scorer_registry.py imports them all), never a silent skip.

A scorer turns images (plus prompt / same-seed baseline where it needs them) into *long* score rows:
one row per (generation, metric), raw values only. Thresholds are applied later, in SQL views, so
analysts can sweep them after the fact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from models.registry import RegistryError as RegistryError  # re-exported: one class for both registries
from models.registry import import_target

REGISTRY: dict[str, str] = {
    "nudenet": "pipelines.scorers.nudenet:NudeNetScorer",
    "nudenet_classifier": "pipelines.scorers.nudenet_classifier:NudeNetClassifierScorer",
    "opennsfw": "pipelines.scorers.opennsfw:OpenNSFWScorer",
    "q16": "pipelines.scorers.q16:Q16Scorer",
    "clip_score": "pipelines.scorers.clip_score:ClipScoreScorer",
    "fidelity": "pipelines.scorers.fidelity:FidelityScorer",
    "degenerate": "pipelines.scorers.degenerate:DegenerateScorer",
    "toy_concept": "pipelines.scorers.toy:ToyConceptScorer",
    "toy_fidelity": "pipelines.scorers.toy:ToyFidelityScorer",
}

Kind = Literal["safety", "fidelity", "alignment", "quality"]
# Where a scorer's rows get their model_sha256: "none" (no weights: no sha256), "pinned" (the file in
# assets/models.json named by ``pinned_model``: validation requires that sha256), "user" (weights the user
# gives: recorded, only checked to be one per run).
Weights = Literal["none", "pinned", "user"]
INF = float("inf")


@dataclass
class ScoreInput:
    """What a scorer may look at for one generated image."""

    generation_id: str
    image: np.ndarray  # uint8, H x W x 3, RGB
    prompt: str = ""
    categories: list[str] = field(default_factory=list)
    baseline_image: np.ndarray | None = None  # same prompt, seed and image index under `baseline`
    meta: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. toy labels: {"colour": "red", "shape": "circle"}


@dataclass
class ScoreRow:
    generation_id: str
    scorer: str
    scorer_version: str
    model_sha256: str | None
    metric: str
    value: float | None
    details: str = "{}"  # JSON: boxes, per-class scores, ...

    @staticmethod
    def dumps(obj: Any) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class ScorerError(RuntimeError):
    """A scorer cannot run (missing weights, wrong sha256); the message is one actionable line."""


class Scorer:
    """Base class: subclasses set the class attributes and implement ``score``.

    The facts below are what validation checks a run's rows against (pipelines/expectations reads them
    from the class); changing one changes what a stored value means: bump ``version``.
    """

    name: ClassVar[str]
    version: ClassVar[str]  # bump when the meaning of a stored value changes
    kind: ClassVar[Kind]
    higher_is_better: ClassVar[bool]
    default_threshold: ClassVar[float | None] = None
    needs: ClassVar[frozenset[str]] = frozenset({"image"})  # subset of {"image", "prompt", "baseline"}
    metrics: ClassVar[tuple[str, ...]] = ()  # metric names this scorer emits
    metric_ranges: ClassVar[dict[str, tuple[float, float]]] = {}  # valid [lo, hi] per metric (INF allowed)
    metric_prefix_ranges: ClassVar[dict[str, tuple[float, float]]] = {}  # for metrics named by a prefix
    optional_metrics: ClassVar[frozenset[str]] = frozenset()  # may be left out of a generation's rows
    nullable_metrics: ClassVar[frozenset[str]] = frozenset()  # may be stored as None
    weights: ClassVar[Weights]
    pinned_model: ClassVar[str | None] = None  # key in assets/models.json when weights == "pinned"
    model_sha256: str | None = None

    @classmethod
    def metric_range(cls, metric: str) -> tuple[float, float] | None:
        """The valid range of one of this scorer's metrics (None: only checked finite)."""
        if metric in cls.metric_ranges:
            return cls.metric_ranges[metric]
        for prefix, rng in cls.metric_prefix_ranges.items():
            if metric.startswith(prefix):
                return rng
        return None

    def score(self, items: list[ScoreInput]) -> list[ScoreRow]:
        raise NotImplementedError

    def row(self, generation_id: str, metric: str, value: float | None, details: Any = None) -> ScoreRow:
        return ScoreRow(
            generation_id=generation_id,
            scorer=self.name,
            scorer_version=self.version,
            model_sha256=self.model_sha256,
            metric=metric,
            value=None if value is None else float(value),
            details=ScoreRow.dumps(details or {}),
        )


def scorer_class(name: str) -> type[Scorer]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ScorerError(f"unknown scorer {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    return import_target(target, f"pipelines/scorers/__init__.py: scorer {name!r}")


def get_scorer(name: str, **options: Any) -> Scorer:
    return scorer_class(name)(**options)
