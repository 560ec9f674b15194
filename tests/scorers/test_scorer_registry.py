"""Every scorer of this package declares consistent metadata, and importing one loads no model library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import scorers
from pipelines.scorers import REGISTRY, Scorer, scorer_class

ALL = list(REGISTRY)  # every registry line: a broken one fails here, it does not drop out
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ALL)
def test_class_metadata(name):
    cls = scorer_class(name)
    module, _, attr = REGISTRY[name].partition(":")
    assert cls.__module__ == module and cls.__name__ == attr
    assert issubclass(cls, Scorer) and cls.name == name and name in REGISTRY
    assert cls.kind in ("safety", "fidelity", "alignment", "quality")
    assert isinstance(cls.version, str) and cls.version
    assert isinstance(cls.higher_is_better, bool)
    assert cls.metrics and len(set(cls.metrics)) == len(cls.metrics)
    assert cls.needs <= {"image", "prompt", "baseline"} and "image" in cls.needs
    assert cls.default_threshold is None or isinstance(cls.default_threshold, float)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("pipelines.scorers.degenrate:DegenerateScorer", "No module named 'pipelines.scorers.degenrate'"),
        ("pipelines.scorers.degenerate:DegenerateScorr", "has no attribute 'DegenerateScorr'"),
    ],
)
def test_a_broken_entry_names_itself_in_one_line(monkeypatch, target, reason):
    monkeypatch.setitem(REGISTRY, "degenerate", target)
    with pytest.raises(scorers.RegistryError) as info:
        scorer_class("degenerate")
    message = str(info.value)
    assert "\n" not in message and "'degenerate'" in message and target in message and reason in message


def test_importing_scorers_loads_no_heavy_library():
    modules = ", ".join(sorted({REGISTRY[name].partition(":")[0] for name in ALL}))
    code = (
        f"import sys, {modules}\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'cv2', 'nudenet', 'scipy', 'skimage', 'PIL')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", ALL)
def test_validation_facts_are_declared_on_the_class(name):
    """What validation checks a scorer's rows against lives on the class: every metric has a range, the
    optional / nullable ones are metrics it emits, and a pinned model names a file in models.json."""
    from pipelines.scorers.nudenet_classifier import pinned_models

    cls = scorer_class(name)
    for metric in cls.metrics:
        lo, hi = cls.metric_range(metric)
        assert lo < hi, (metric, lo, hi)
    assert set(cls.metric_ranges) <= set(cls.metrics)
    assert all(any(m.startswith(p) for m in cls.metrics) for p in cls.metric_prefix_ranges)
    assert cls.optional_metrics <= set(cls.metrics) and cls.nullable_metrics <= set(cls.metrics)
    assert cls.weights in ("none", "pinned", "user")
    if cls.weights == "pinned":
        assert cls.pinned_model in pinned_models() and len(pinned_models()[cls.pinned_model]["sha256"]) == 64
    else:
        assert cls.pinned_model is None


def test_metric_range_reads_the_class():
    from pipelines.scorers.nudenet import NudeNetScorer

    assert scorer_class("fidelity").metric_range("ssim") == (-1, 1)
    assert NudeNetScorer.metric_range("max_score_i2p_v1") == (0, 1)  # a prefix range
    assert NudeNetScorer.metric_range("no_such_metric") is None
