"""Shared fixtures for the scorer tests: committed images and a tiny random CLIP folder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the project need not be pip-installed to run its tests
    sys.path.insert(0, str(REPO))

DATA = Path(__file__).resolve().parent / "data"
ASTRONAUT_PNG = DATA / "astronaut_256.png"  # scikit-image's astronaut (public domain, NASA), 256x256


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(ASTRONAUT_PNG).convert("RGB"))


@pytest.fixture(scope="session")
def blank() -> np.ndarray:
    return np.zeros((256, 256, 3), dtype=np.uint8)


TINY_PROJ = 16  # test_scorer_clip.py hard-codes the same value


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A random CLIP (2 layers x 32 dims per tower, projection 16, 32 px images) saved in HF layout with a
    PIL image-processor config and the project's CLIP tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # pragma: no cover
        from transformers import CLIPImageProcessor as Processor

    from models.components import load_clip_tokenizer

    out = tmp_path_factory.mktemp("tiny_clip")
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=TINY_PROJ,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).eval().save_pretrained(str(out))
    Processor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(out))
    load_clip_tokenizer().save_pretrained(str(out))
    return out
