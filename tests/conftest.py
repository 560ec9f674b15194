"""Shared fixtures: tiny real components built once per test session (no hub, CPU only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATASETS = SHARED / "datasets"


def pytest_configure(config):
    # Tiny models on a 2-core machine: one intra-op thread is several times faster than the default
    # (thread start-up dominates ms-sized kernels), and parallel test processes stop oversubscribing.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A tiny random SD pipeline folder (built once, cached under .cache/)."""
    from models.components import resolve_model

    return resolve_model("builtin:tiny")[1]


@pytest.fixture(scope="session")
def tiny_components(tiny_model_dir):
    from models.components import load_components

    return load_components(str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_family_components():
    """family → tiny random Components of that family ('sd', 'sdxl', 'sd3'), each built and loaded once."""
    from models.components import load_components

    loaded: dict = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = load_components({"sd": "builtin:tiny"}.get(family, f"builtin:tiny-{family}"))
        return loaded[family]

    return get


@pytest.fixture(scope="session")
def toy_components():
    from models.components import TOY_MODEL_DIR, load_components

    if not (TOY_MODEL_DIR / "model_index.json").exists():
        pytest.skip("toy weights not trained yet (models/toy/weights)")
    return load_components("builtin:toy")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.exists():
        pytest.skip(
            f"benchmark prompt files not present at {DATASETS} (they live in ../shared, beside a checkout)"
        )
    return DATASETS


@pytest.fixture(autouse=True)
def _quiet_hf(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    monkeypatch.setenv("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
