"""Every scorer of this package declares consistent metadata, and importing one loads no model library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.scorers import REGISTRY, Scorer, scorer_class

MINE = ["nudenet", "nudenet_classifier", "opennsfw", "q16", "clip_score", "fidelity", "degenerate"]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", MINE)
def test_class_metadata(name):
    cls = scorer_class(name)
    assert issubclass(cls, Scorer) and cls.name == name and name in REGISTRY
    assert cls.kind in ("safety", "fidelity", "alignment", "quality")
    assert isinstance(cls.version, str) and cls.version
    assert isinstance(cls.higher_is_better, bool)
    assert cls.metrics and len(set(cls.metrics)) == len(cls.metrics)
    assert cls.needs <= {"image", "prompt", "baseline"} and "image" in cls.needs
    assert cls.default_threshold is None or isinstance(cls.default_threshold, float)


def test_importing_scorers_loads_no_heavy_library():
    modules = ", ".join(f"pipelines.scorers.{m}" for m in MINE)
    code = (
        f"import sys, {modules}\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'cv2', 'nudenet', 'scipy', 'skimage', 'PIL')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
