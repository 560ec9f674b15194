"""Every shipped run spec validates; the real-benchmark ones read their prompt files (../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import method_class
from pipelines.plan import load_prompts
from pipelines.runspec import RunSpecError, load_spec

SPECS = sorted((Path(__file__).resolve().parents[2] / "runspecs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_validates(path):
    try:
        spec = load_spec(path)
    except RunSpecError as exc:
        # the SDXL / SD3 examples name methods on those families: issue 14b declares them (FAMILIES)
        if "does not support family" in str(exc) and not hasattr(method_class("negative_prompt"), "FAMILIES"):
            pytest.skip(f"needs issue 14b's method x family support: {exc}")
        raise
    assert any(m.name == "baseline" for m in spec.methods)


@pytest.mark.parametrize("name, expected", [("i2p_sd14", 4703 + 12), ("nudity_sd14", 142 + 200 + 500 + 12)])
def test_real_benchmark_specs_read_their_files(datasets_dir, name, expected):
    spec = load_spec(Path(__file__).resolve().parents[2] / "runspecs" / f"{name}.yaml")
    prompts = load_prompts(spec, spec.concept)
    assert len(prompts) == expected
    assert all(p.source_sha256 for p in prompts if p.source_file)
