"""What a sampling call does outside the models: text-encoder rows (each distinct text once), no device→host
reads inside the denoising loop, SAFREE's keyword cache (hit = the same tensors; keyed by the encoder and its
weights), and Safe Denoiser's pre-drawn window noise (the same numbers as drawing step by step)."""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import models.sampler as sampler_module
from models import safe_denoiser as sdmod
from models import safree as safree_module
from models.concepts import ConceptPack
from models.registry import build_method
from models.safe_denoiser import SafeDenoiser, SafeDenoiserConfig
from models.safree import SAFREE
from models.sampler import Request, SamplerSettings, sample

SETTINGS = SamplerSettings(scheduler="ddim", steps=6)
PACK = ConceptPack(name="test", version=1, safree_keywords=("red", "crimson", "blood", "scarlet"))
MODELS_DIR = str(Path(sampler_module.__file__).resolve().parent)
# every way a tensor's value reaches Python: each one waits for the device to finish queued work
HOST_READS = ("cpu", "item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


@contextlib.contextmanager
def text_rows(components) -> Iterator[list[int]]:
    """Rows each text-encoder call runs, in call order."""
    rows: list[int] = []
    handle = components.text_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(int((args[0] if args else kwargs["input_ids"]).shape[0])),
        with_kwargs=True,
    )
    try:
        yield rows
    finally:
        handle.remove()


@contextlib.contextmanager
def loop_host_reads(components, monkeypatch) -> Iterator[list[tuple[str, str, int]]]:
    """(what, file, line) of every tensor→host read made by code in models/ (or this file) between the first
    UNet call and the VAE decode, i.e. inside the denoising loop."""
    reads: list[tuple[str, str, int]] = []
    in_loop = {"on": False}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            if in_loop["on"]:
                caller = sys._getframe(1).f_code
                if caller.co_filename.startswith(MODELS_DIR) or caller.co_filename == __file__:
                    reads.append((_name, caller.co_filename, sys._getframe(1).f_lineno))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    decode = sampler_module.decode

    def stop_then_decode(comp, latents):
        in_loop["on"] = False
        return decode(comp, latents)

    monkeypatch.setattr(sampler_module, "decode", stop_then_decode)
    handle = components.unet.register_forward_pre_hook(lambda *_: in_loop.update(on=True))
    try:
        yield reads
    finally:
        handle.remove()
        monkeypatch.undo()


# -- text-encoder rows -----------------------------------------------------------------------------------


def test_each_distinct_text_is_encoded_once(tiny_components):
    reqs = [Request("a cat", 1), Request("a dog", 2), Request("a cat", 3), Request("a car", 4)]
    with text_rows(tiny_components) as rows:
        result = sample(tiny_components, reqs, settings=SETTINGS)
    assert rows == [3, 1]  # three distinct prompts, one unconditional row for all four requests
    # rows of one prompt share its embedding: with equal seeds, equal images
    with text_rows(tiny_components) as rows:
        same = sample(tiny_components, [Request("a cat", 1), Request("a cat", 1)], settings=SETTINGS)
    assert rows == [1, 1]
    np.testing.assert_array_equal(same.images[0], same.images[1])
    # batched kernels may round differently at another batch size
    assert np.abs(same.images[0].astype(int) - result.images[0].astype(int)).max() <= 1


def test_negative_prompt_method_encodes_its_text_once(tiny_components, pack):
    reqs = [Request(p, s) for s, p in enumerate(["a red apple", "a blue car", "a cat", "a house"])]
    with text_rows(tiny_components) as rows:
        sample(tiny_components, reqs, build_method("negative_prompt", "max", concept=pack), SETTINGS)
    assert rows == [4, 1, 1]  # prompts, the sampler's "" row, the keywords row


# -- no device→host reads inside the loop -----------------------------------------------------------------


@pytest.fixture(scope="module")
def negation_dir(tmp_path_factory):
    from models.toy.render import render_seeded

    folder = tmp_path_factory.mktemp("negation")
    for k, shape in enumerate(["circle", "square", "triangle", "star"]):
        Image.fromarray(render_seeded("red", shape, 100 + k)[0]).save(folder / f"red_{k}.png")
    return folder


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SAFEAUDIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_the_counter_sees_a_host_read(tiny_components, pack, monkeypatch):
    class SyncingSLD(type(build_method("sld", "strong", concept=pack))):
        def guide(self, ctx, i, t, eps_rows):
            eps = super().guide(ctx, i, t, eps_rows)
            float(eps.abs().max())  # a per-step sync, as the old accumulator's .cpu() was
            return eps

    with loop_host_reads(tiny_components, monkeypatch) as reads:
        sample(
            tiny_components, [Request("a cat", 1)], SyncingSLD.from_level("strong", concept=pack), SETTINGS
        )
    assert len(reads) == SETTINGS.steps and {r[0] for r in reads} == {"__float__"}


@pytest.mark.parametrize(
    "name, level",
    [
        ("baseline", "off"),
        ("sld", "strong"),
        ("sld", "max"),
        ("safree", "strong"),
        ("negative_prompt", "max"),
    ],
)
def test_no_host_reads_in_the_loop(tiny_components, pack, monkeypatch, name, level):
    reqs = [Request("a red apple", 1), Request("a blue car", 2)]
    method = build_method(name, level, concept=pack)
    settings = SamplerSettings(scheduler="ddim", steps=10)  # past strong's warm-up (δ = 7)
    with loop_host_reads(tiny_components, monkeypatch) as reads:
        result = sample(tiny_components, reqs, method, settings)
    assert reads == []
    if name == "sld":  # the accumulator still reaches the diagnostics
        assert all(d["sld_applied_steps"] > 0 for d in result.diagnostics)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(eta=4.0, sigma=1.0, query_norm=True, gate_threshold=1e-9),  # deterministic re-noising
        dict(eta=4.0, sigma=1.0, gate_threshold=1e-9, renoise="official"),  # fresh ξ from setup
        dict(eta=1.0, variant="paper", gate_margin=0.0),  # (a, s) per step from setup
    ],
)
def test_safe_denoiser_loop_has_no_host_reads(tiny_components, negation_dir, monkeypatch, overrides):
    method = SafeDenoiser(SafeDenoiserConfig(negation_set=str(negation_dir), t_end=0, **overrides))
    reqs = [Request("a red circle", 1), Request("a blue square", 2)]
    with loop_host_reads(tiny_components, monkeypatch) as reads:
        result = sample(tiny_components, reqs, method, SETTINGS)
    assert reads == []
    assert [d["sd_window_steps"] for d in result.diagnostics] == [SETTINGS.steps] * 2


def test_window_noise_is_the_step_by_step_draws(tiny_components, negation_dir):
    """ξ drawn up front equals drawing (1, C, h, w) per request at each window step, in step order."""
    method = SafeDenoiser(
        SafeDenoiserConfig(negation_set=str(negation_dir), eta=1.0, gate_threshold=1e-9, renoise="official")
    )
    reqs = [Request("a red circle", 5), Request("a blue square", 6)]
    captured = {}
    setup = method.setup

    def capture(ctx):
        setup(ctx)
        captured["xi"] = [x.clone() for x in ctx.state["sd_xi"]]
        captured["window"] = list(ctx.state["sd_window"])

    method.setup = capture
    sample(tiny_components, reqs, method, SETTINGS)
    generators = [torch.Generator("cpu").manual_seed(sdmod._aux_seed(r.seed)) for r in reqs]
    n_window = sum(captured["window"])
    assert 0 < n_window == len(captured["xi"])
    for xi in captured["xi"]:
        expected = torch.cat([torch.randn((1, 4, 8, 8), generator=g) for g in generators])
        torch.testing.assert_close(xi, expected, rtol=0, atol=0)


# -- SAFREE's keyword cache ----------------------------------------------------------------------------------


def _subspace_after_call(components, method, reqs):
    captured = {}
    original = method.toxic_subspace

    def spy(ctx):
        captured["subspace"] = original(ctx)
        return captured["subspace"]

    method.toxic_subspace = spy
    result = sample(components, reqs, method, SETTINGS)
    return result, captured["subspace"]


def test_safree_keyword_cache_hit_returns_the_same_tensors(tiny_components):
    safree_module.clear_keyword_cache()
    method = SAFREE.from_level("strong", concept=PACK)
    reqs = [Request("blood on a white floor", 3)]
    with text_rows(tiny_components) as rows_first:
        first, cold = _subspace_after_call(tiny_components, method, reqs)
    with text_rows(tiny_components) as rows_second:
        second, warm = _subspace_after_call(tiny_components, method, reqs)
    assert not cold.hit and warm.hit
    assert warm.pooled is cold.pooled and warm.p_concept is cold.p_concept
    assert sum(rows_first) - sum(rows_second) == len(PACK.safree_keywords)  # the keyword rows are skipped
    np.testing.assert_array_equal(first.images, second.images)
    assert first.diagnostics == second.diagnostics


def test_safree_keyword_cache_is_keyed_by_encoder_and_weights(tiny_components):
    safree_module.clear_keyword_cache()
    method = SAFREE.from_level("strong", concept=PACK)
    reqs = [Request("a red car", 4)]
    _, original = _subspace_after_call(tiny_components, method, reqs)

    other = copy.copy(tiny_components)
    other.text_encoder = copy.deepcopy(tiny_components.text_encoder)
    _, same_weights_other_model = _subspace_after_call(other, method, reqs)
    assert not same_weights_other_model.hit  # another model object never reads this model's entry
    torch.testing.assert_close(same_weights_other_model.p_concept, original.p_concept, rtol=0, atol=0)

    with torch.no_grad():  # an in-place edit of the weights invalidates the entry
        list(other.text_encoder.parameters())[-1].add_(0.5)  # the final layer norm's bias
    _, edited = _subspace_after_call(other, method, reqs)
    assert not edited.hit and not torch.equal(edited.pooled, original.pooled)
    _, again = _subspace_after_call(other, method, reqs)
    assert again.hit and again.pooled is edited.pooled

    _, back = _subspace_after_call(tiny_components, method, reqs)  # the first model's entry is intact
    assert back.hit and back.p_concept is original.p_concept


@pytest.mark.slow
def test_safree_keyword_cache_is_bounded_and_released_with_the_model(tiny_components):
    safree_module.clear_keyword_cache()
    reqs = [Request("a red car", 4)]
    for k in range(safree_module.KEYWORD_CACHE_SIZE + 3):
        pack = ConceptPack(name=f"p{k}", version=1, safree_keywords=("red", f"colour{k}"))
        sample(tiny_components, reqs, SAFREE.from_level("strong", concept=pack), SETTINGS)
    assert len(safree_module._KEYWORD_CACHE[tiny_components.text_encoder]) == safree_module.KEYWORD_CACHE_SIZE

    other = copy.copy(tiny_components)
    other.text_encoder = copy.deepcopy(tiny_components.text_encoder)
    sample(other, reqs, SAFREE.from_level("strong", concept=PACK), SETTINGS)
    assert len(safree_module._KEYWORD_CACHE) == 2
    del other
    import gc

    gc.collect()
    assert len(safree_module._KEYWORD_CACHE) == 1
