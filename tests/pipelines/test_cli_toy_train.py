"""`safeaudit toy train` end to end at a few steps: trains, exports a diffusers folder, resumes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipelines.cli import app


@pytest.mark.slow
def test_toy_train_cli_exports_a_loadable_model(tmp_path):
    from models.components import load_components

    args = [
        "toy",
        "train",
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "export"),
        "--seed",
        "3",
        "--vae-steps",
        "2",
        "--text-steps",
        "2",
        "--unet-steps",
        "2",
        "--n-images",
        "16",
        "--threads",
        "1",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    c = load_components(str(tmp_path / "export"))
    assert c.vae_scale_factor == 8 and len(c.tokenizer) == 49408
    record = json.loads((tmp_path / "export" / "safeaudit.json").read_text())
    assert record["config"]["seed"] == 3 and record["config"]["unet_steps"] == 2
