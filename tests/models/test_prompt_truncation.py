"""Prompts over the text encoder's 75 tokens: cut to the window with the end-of-text token kept, and every
such image says so (``prompt_truncated``), a known answer on the real CLIP tokenizer."""

from __future__ import annotations

import pytest

from models.baseline import Baseline
from models.sampler import Context, Request, SamplerSettings, sample

BOS, EOS = 49406, 49407
SETTINGS = SamplerSettings(scheduler="ddim", steps=2)


def words(n: int) -> str:
    return " ".join(["cat"] * n)  # "cat" is one CLIP token


@pytest.mark.parametrize(("n", "truncated"), [(1, False), (75, False), (76, True), (120, True)])
def test_prompt_truncated_is_recorded_at_the_75_token_limit(tiny_components, n, truncated):
    tok = tiny_components.tokenizer
    assert len(tok(words(n)).input_ids) == n + 2  # the known answer: n tokens plus BOS and EOS
    result = sample(tiny_components, [Request(words(n), 0), Request("a red car", 0)], Baseline(), SETTINGS)
    assert [d["prompt_truncated"] for d in result.diagnostics] == [truncated, False]


def test_truncation_keeps_the_end_of_text_token(tiny_components):
    ctx = Context(tiny_components, SETTINGS, [], None, None, [])
    ids = ctx.tokenize([words(120), words(75)])
    assert ids.shape == (2, 77)
    assert ids[0, 0] == BOS and ids[0, 76] == EOS and ids[0, 75] != EOS  # cut, then EOS appended
    assert ids[1, 76] == EOS and ids[1, 75] != EOS  # exactly 75 tokens: nothing cut
