"""`safeaudit sample` and `safeaudit methods` for every registered method and level."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from models.registry import METHODS, method_class
from pipelines.cli import app

CASES = [(m, level) for m in METHODS for level in method_class(m).LEVELS]


@pytest.mark.parametrize("method, level", CASES, ids=[f"{m}-{lv}" for m, lv in CASES])
def test_sample_every_method_and_level(tmp_path, tiny_model_dir, method, level):
    out = tmp_path / "img.png"
    res = CliRunner().invoke(
        app,
        [
            "sample",
            "--model",
            str(tiny_model_dir),
            "--method",
            method,
            "--level",
            level,
            "--concept",
            "toy",
            "--prompt",
            "a red circle",
            "--seed",
            "3",
            "--steps",
            "2",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8


def test_sample_unknown_level_is_one_line_error(tmp_path, tiny_model_dir):
    res = CliRunner().invoke(
        app,
        [
            "sample",
            "--model",
            str(tiny_model_dir),
            "--method",
            "sld",
            "--level",
            "ultra",
            "--out",
            str(tmp_path / "x.png"),
        ],
    )
    assert res.exit_code == 2
    assert "no level 'ultra'" in res.output


def test_methods_lists_levels_knobs_and_defaults():
    res = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    flat = res.output.replace("\n", " ")
    for name in METHODS:
        assert name in flat
    assert "weak_paper" in flat and "strength" in flat  # SLD's paper level and knob
    assert "provisional" in flat  # dual_latent is marked
