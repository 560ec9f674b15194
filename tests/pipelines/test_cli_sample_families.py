"""`safeaudit sample` on the tiny SDXL and SD3 built-ins for every supported method and level; an
unsupported method × family pair exits 2 with one line naming both; `tiny-model --family`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from models.registry import METHODS, method_class
from pipelines.cli import app

FAMILIES = ("sdxl", "sd3")


def _ruled_out(method: str, family: str, level: str) -> bool:
    """A level whose config rules the family out (SAFREE's paper LRA on SD3): tested to exit 2 below."""
    from models.concepts import load_pack

    return method_class(method).from_level(level, concept=load_pack("toy")).family_error(family) is not None


SUPPORTED = [(m, f) for f in FAMILIES for m in METHODS if f in method_class(m).FAMILIES]
# every level of every supported pair (slow: ~50 runs); test-fast runs the methods that add text rows (SLD's
# concept row) or edit token states (SAFREE) at max on each family
ALL_LEVELS = [(m, f, lv) for m, f in SUPPORTED for lv in method_class(m).LEVELS if not _ruled_out(m, f, lv)]
QUICK = [(m, f, "max") for m, f in SUPPORTED if m in ("sld", "safree")]


def _sample(tmp_path, family: str, method: str, level: str):
    out = tmp_path / f"{family}-{method}-{level}.png"
    args = ["sample", "--model", f"builtin:tiny-{family}", "--method", method, "--level", level]
    args += ["--concept", "toy", "--prompt", "a red circle", "--seed", "3", "--steps", "2", "--out", str(out)]
    return CliRunner().invoke(app, args), out


def _check(res, out):
    assert res.exit_code == 0, res.output
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("method, family, level", QUICK, ids=[f"{f}-{m}-{lv}" for m, f, lv in QUICK])
def test_sample_each_supported_pair(tmp_path, method, family, level):
    _check(*_sample(tmp_path, family, method, level))


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, family, level", ALL_LEVELS, ids=[f"{f}-{m}-{lv}" for m, f, lv in ALL_LEVELS]
)
def test_sample_every_supported_pair_and_level(tmp_path, method, family, level):
    _check(*_sample(tmp_path, family, method, level))


@pytest.mark.parametrize("family", FAMILIES)
def test_unsupported_pair_exits_2_with_one_line(tmp_path, family):
    unsupported = [m for m in METHODS if family not in method_class(m).FAMILIES]
    assert unsupported, f"every method supports {family}: pick another unsupported case"
    res, out = _sample(tmp_path, family, unsupported[0], "max")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert unsupported[0] in lines[0] and repr(family) in lines[0] and "does not support" in lines[0]
    assert not out.exists()


def test_level_that_rules_out_a_family_exits_2(tmp_path):
    res, out = _sample(tmp_path, "sd3", "safree", "paper")
    assert res.exit_code == 2 and "lra='paper'" in res.output and "'sd3'" in res.output and not out.exists()


def test_sd3_refuses_a_ddpm_scheduler(tmp_path):
    out = tmp_path / "x.png"
    args = ["sample", "--model", "builtin:tiny-sd3", "--scheduler", "ddim", "--steps", "2", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "'ddim' is not available for family 'sd3'" in res.output


@pytest.mark.parametrize(
    ("family", "pipeline"), [("sdxl", "StableDiffusionXLPipeline"), ("sd3", "StableDiffusion3Pipeline")]
)
def test_tiny_model_family(tmp_path, family, pipeline):
    from models.components import family_of

    res = CliRunner().invoke(app, ["tiny-model", str(tmp_path / family), "--family", family])
    assert res.exit_code == 0, res.output
    index = json.loads((tmp_path / family / "model_index.json").read_text())
    assert index["_class_name"] == pipeline and family_of(str(tmp_path / family)) == family


def test_tiny_model_unknown_family_is_one_line_error(tmp_path):
    res = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "x"), "--family", "flux"])
    assert res.exit_code == 2 and "unknown model family 'flux'" in res.output


def test_methods_lists_families_and_marks_ours():
    res = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "sdxl (ours)" in res.output and "not in the authors' release" in res.output
