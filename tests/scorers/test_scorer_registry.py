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
