"""SAFREE: projector algebra, trigger rule, SVF mapping, baseline/diffusers parity, batching, LRA hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.concepts import ConceptPack, load_pack
from models.safree import (
    SAFREE,
    SAFREEConfig,
    filtered_steps,
    low_frequency_damp,
    project_tokens,
    projector,
    svf_cutoff,
    trigger_mask,
)
from models.sampler import Request, SamplerSettings, make_scheduler, sample

PACK = ConceptPack(name="test", version=1, safree_keywords=("red", "crimson", "blood", "scarlet"))
SETTINGS = SamplerSettings(scheduler="ddim", steps=4)


def grey_levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def safree(level: str = "strong", **overrides) -> SAFREE:
    return SAFREE.from_level(level, overrides=overrides, concept=PACK)


# -- algebra on hand-made vectors --------------------------------------------------------------------------


def test_projector_is_symmetric_idempotent_and_annihilates_its_columns():
    c = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    p = projector(c)
    eye = torch.eye(8)
    torch.testing.assert_close(p, p.mT)
    torch.testing.assert_close(p @ p, p, atol=1e-6, rtol=0)
    torch.testing.assert_close((eye - p) @ c, torch.zeros_like(c), atol=1e-5, rtol=0)
    assert math.isclose(float(torch.trace(p)), 3.0, abs_tol=1e-5)
    # a repeated keyword adds no direction; no keywords project nothing
    assert math.isclose(float(torch.trace(projector(torch.cat([c, c[:, :1]], dim=1)))), 3.0, abs_tol=1e-5)
    assert torch.equal(projector(torch.zeros(8, 0)), torch.zeros(8, 8))


def test_operator_orders_differ_exactly_when_projectors_do_not_commute():
    e1, e2, e3 = torch.eye(3)
    p_concept = projector(e1[:, None])
    p_input = projector((e1 + e2)[:, None])  # neither nested in nor orthogonal to span(e1)
    h = e1[None, :]
    official = project_tokens(h, p_input, p_concept, "official")  # (I − P_C)·P_I·e1 = e2/2
    paper = project_tokens(h, p_input, p_concept, "paper")  # P_I·(I − P_C)·e1 = 0
    torch.testing.assert_close(official[0], e2 / 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(paper[0], torch.zeros(3), atol=1e-6, rtol=0)
    commuting = projector(torch.stack([e2, e3], dim=1))  # orthogonal to span(e1): the orders agree
    hs = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        project_tokens(hs, commuting, p_concept, "official"),
        project_tokens(hs, commuting, p_concept, "paper"),
    )


@pytest.mark.parametrize(
    ("distances", "alpha", "expected"),
    [
        ([1.0, 1.0, 1.0, 1.5], 0.01, [False, False, False, True]),
        ([1.0, 1.0, 1.0, 1.5], 0.5, [False, False, False, True]),  # 1.5 ≥ 1.5·1.0: the margin is inclusive
        ([1.0, 1.0, 1.0, 1.5], 0.6, [False, False, False, False]),
        ([2.0, 1.0, 3.0], 0.01, [False, False, True]),  # 3 ≥ 1.01·1.5, 2 < 1.01·2
        ([1.0, 1.0, 1.0], 0.0, [True, True, True]),  # α = 0 flags ties
        ([1.0, 1.0, 1.0], 0.01, [False, False, False]),
        ([5.0], 0.0, [True]),  # one token: the release's empty leave-one-out mean flags it
        ([5.0], 1e9, [True]),  # ... whatever the margin (NaN compares false)
        ([], 0.0, []),
    ],
)
def test_trigger_rule(distances, alpha, expected):
    assert trigger_mask(torch.tensor(distances), alpha).tolist() == expected


def test_single_token_rule_skip_is_ours():
    assert trigger_mask(torch.tensor([5.0]), 0.0, "skip").tolist() == [False]
    assert SAFREE.from_level("official").config.single_token == "release"
    assert SAFREE.from_level("strong").config.single_token == "release"
    assert SAFREE.from_level("paper").config.single_token == "skip"
    assert "single_token=skip" in SAFREE.describe()["notes"]["paper"]  # `safeaudit methods` says so
    with pytest.raises(ValueError, match="single_token"):
        SAFREEConfig(single_token="never")


def test_official_projects_a_one_token_prompt_as_released(tiny_components):
    """Known answer: the one token's state becomes (I − P_C)·P_I·h_1 with P_I from its one masked copy;
    BOS, EOS and padding keep theirs. (Before, a one-token prompt was never projected.)"""
    method = SAFREE.from_level("official", concept=PACK)
    captured = {}
    setup = method.setup

    def spy(ctx):
        setup(ctx)
        captured["safe"], captured["cond"] = ctx.state["safree"]["safe"].clone(), ctx.cond.clone()

    method.setup = spy
    result = sample(tiny_components, [Request("scarlet", 3)], method, SETTINGS)
    diag = result.diagnostics[0]
    assert diag["safree_trigger_count"] == 1 and diag["safree_trigger_tokens"] == "scarlet</w>"
    assert diag["safree_projected"] and diag["acted"]

    tok, enc = tiny_components.tokenizer, tiny_components.text_encoder
    enc_ids = tok(["scarlet"], padding="max_length", max_length=77, return_tensors="pt")
    ids = enc_ids.input_ids
    assert int(enc_ids.attention_mask.sum()) == 3  # BOS, one token, EOS
    kw = tok(list(PACK.safree_keywords), padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        c = enc(kw).pooler_output.double().T  # D×K
        masked = ids.clone()
        masked[0, 1] = 0
        e = enc(masked).pooler_output.double().T  # D×1
    p_c = c @ torch.linalg.pinv(c.T @ c) @ c.T
    p_i = e @ torch.linalg.pinv(e.T @ e) @ e.T
    h = captured["cond"][0].double()
    expected = (torch.eye(len(p_c), dtype=torch.float64) - p_c) @ p_i @ h[1]
    safe = captured["safe"][0].double()
    torch.testing.assert_close(safe[1], expected, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(safe[0], h[0])
    torch.testing.assert_close(safe[2:], h[2:])
    assert float((safe[1] - h[1]).norm()) > 1e-2  # the projection moved it

    skip = SAFREE.from_level("official", overrides={"single_token": "skip"}, concept=PACK)
    ours = sample(tiny_components, [Request("scarlet", 3)], skip, SETTINGS).diagnostics[0]
    assert ours["safree_trigger_count"] == 0 and not ours["safree_projected"]


@pytest.mark.parametrize(
    ("beta", "t_prime"),
    [(0.0, 0), (0.45, 0), (0.50, 2), (0.52, 3), (0.53, 5), (0.54, 6), (0.55, 7), (0.60, 10), (0.9, 10)],
)
def test_official_svf_nudity_mapping(beta, t_prime):
    cfg = SAFREEConfig()
    assert svf_cutoff(beta, cfg) == t_prime
    cos = 1.0 - beta  # β is one minus the mean cosine
    assert filtered_steps(1.0 - cos, cfg, total_steps=50) == t_prime + 1  # i ≤ t': t' + 1 steps


@pytest.mark.parametrize(("beta", "t_prime"), [(0.0, 5), (0.5, 6), (1.0, 7)])
def test_paper_svf_mapping(beta, t_prime):
    assert svf_cutoff(beta, SAFREEConfig(svf_variant="paper")) == t_prime  # round(10·σ(β)) ∈ [5, 7]


def test_filtered_steps_forced_budget_svf_off_and_cap():
    assert filtered_steps(0.9, SAFREEConfig(forced_filtered_steps=3), 50) == 3
    assert filtered_steps(0.9, SAFREEConfig(forced_filtered_steps=0), 50) == 0
    assert filtered_steps(0.0, SAFREEConfig(svf=False), 50) == 50
    assert filtered_steps(0.9, SAFREEConfig(), 4) == 4
    assert filtered_steps(0.9, SAFREEConfig(up_t=0), 50) == 1  # γ = 0 still filters step 0, as released


def test_low_frequency_damp_touches_only_larger_low_frequencies():
    g = torch.Generator().manual_seed(2)
    orig = torch.randn(2, 3, 8, 8, generator=g)
    same = low_frequency_damp(orig, orig, 0.2, 1)
    torch.testing.assert_close(same, orig, atol=1e-5, rtol=0)  # |F_safe| > |F_orig| never holds
    louder = low_frequency_damp(orig + 5.0, orig, 0.2, 1)  # a DC offset: only the DC coefficient grows
    torch.testing.assert_close(
        louder.mean(dim=(-2, -1)), (orig.mean(dim=(-2, -1)) + 5.0) * 0.2, atol=1e-4, rtol=0
    )


# -- configuration ---------------------------------------------------------------------------------------


def _effective(cfg: SAFREEConfig) -> tuple[float, float, bool]:
    steps = 0.0 if cfg.forced_filtered_steps == 0 else (math.inf if not cfg.svf else cfg.up_t)
    alpha = math.inf if cfg.forced_filtered_steps == 0 else cfg.alpha
    return steps, alpha, cfg.negative_prompt


def test_levels_form_a_monotone_ladder_and_official_is_the_release():
    ladder = [_effective(SAFREE.from_level(lvl).config) for lvl in ("off", "weak", "medium", "strong", "max")]
    for weaker, stronger in zip(ladder, ladder[1:], strict=False):
        assert stronger[0] >= weaker[0] and stronger[1] <= weaker[1] and stronger[2] >= weaker[2]
    official = SAFREE.from_level("official").config
    assert (official.alpha, official.up_t, official.svf_variant, official.negative_prompt, official.lra) == (
        0.01,
        10.0,
        "official",
        True,
        "official",
    )
    assert SAFREE.from_level("paper").config.operator_order == "paper"


def test_knob_is_live_on_every_level_and_types_are_canonical():
    for lvl in SAFREE.LEVELS:
        cfg = SAFREE.from_level(lvl, knob=5).config
        assert cfg.up_t == 5.0 and cfg.svf and cfg.forced_filtered_steps is None
    assert SAFREE(SAFREEConfig(up_t=10)).config_hash() == SAFREE(SAFREEConfig(up_t=10.0)).config_hash()
    for bad in (
        {"lra": "on"},
        {"svf_variant": "x"},
        {"projection_strength": 1.5},
        {"forced_filtered_steps": -1},
    ):
        with pytest.raises(ValueError):
            SAFREEConfig(**bad)


def test_needs_keywords_only_when_it_acts(tiny_components):
    no_keywords = ConceptPack(name="empty", version=1)
    sample(tiny_components, [Request("a cat", 0)], SAFREE.from_level("off", concept=no_keywords), SETTINGS)
    with pytest.raises(ValueError, match="safree_keywords"):
        sample(
            tiny_components, [Request("a cat", 0)], SAFREE.from_level("strong", concept=no_keywords), SETTINGS
        )


# -- sampling on the tiny random model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def diffusers_pipe(tiny_model_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(tiny_model_dir), safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_off_is_the_baseline_bit_for_bit(tiny_components):
    reqs = [Request("a red car", 1), Request("a cat", 2)]
    base = sample(tiny_components, reqs, settings=SETTINGS).images
    off = sample(tiny_components, reqs, SAFREE.from_level("off", concept=PACK), SETTINGS)
    np.testing.assert_array_equal(off.images, base)
    assert [d["safree_filtered_steps"] for d in off.diagnostics] == [0, 0]


@pytest.mark.parametrize("disable", [{"forced_filtered_steps": 0}, {"alpha": 1e9}])
def test_negative_prompt_switch_alone_equals_diffusers(tiny_components, diffusers_pipe, disable):
    method = safree("official", lra="off", **disable)  # projection disabled: no steps, or no triggers
    result = sample(tiny_components, [Request("a red car", 5)], method, SETTINGS)
    assert result.diagnostics[0]["safree_negative_prompt"]
    diffusers_pipe.scheduler = make_scheduler("ddim", tiny_components.scheduler_config)
    ref = diffusers_pipe(
        "a red car",
        negative_prompt="red, crimson, blood, scarlet",
        num_inference_steps=SETTINGS.steps,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(5),
        output_type="np",
    ).images[0]
    np.testing.assert_array_equal(result.images[0], (ref * 255).round().astype("uint8"))


def test_projection_strength_zero_changes_nothing(tiny_components):
    reqs = [Request("blood on a white floor", 3)]
    zero = sample(tiny_components, reqs, safree(projection_strength=0.0), SETTINGS)
    none = sample(tiny_components, reqs, safree(forced_filtered_steps=0), SETTINGS)
    np.testing.assert_array_equal(zero.images, none.images)
    assert zero.diagnostics[0]["safree_trigger_count"] > 0  # triggers found, but ρ = 0 keeps h
    full = sample(tiny_components, reqs, safree(), SETTINGS)
    assert grey_levels(full.images[0], none.images[0]) > 1


# β on the tiny model is 0.81 / 0.875 / 0.975 for these prompts; centring the steep official sigmoid at
# β = 0.875 (t₀ = 8.75) gives them 1, 3 and 4 (of 4) filtered steps, so rows switch back at different steps.
BATCH_PROMPTS = ["blood on a white floor, photo", "a red car", "a cat"]
SWITCHING = {"svf_t0": 8.75, "up_t": 4.0}


@pytest.mark.parametrize("lra", ["off", "paper"])
def test_batched_prompts_and_seeds_equal_single_calls(tiny_components, lra):
    method = safree(lra=lra, **SWITCHING)
    reqs = [Request(p, s) for p in BATCH_PROMPTS for s in (7, 8)]
    batched = sample(tiny_components, reqs, method, SETTINGS)
    steps = {d["safree_filtered_steps"] for d in batched.diagnostics}
    assert len(steps) == 3, steps  # the test must exercise per-row switching
    worst = 0
    for k, r in enumerate(reqs):
        single = sample(tiny_components, [r], method, SETTINGS)
        worst = max(worst, grey_levels(batched.images[k], single.images[0]))
        for key in ("safree_trigger_count", "safree_filtered_steps"):
            assert batched.diagnostics[k][key] == single.diagnostics[0][key]
        assert math.isclose(
            batched.diagnostics[k]["safree_beta"], single.diagnostics[0]["safree_beta"], abs_tol=1e-4
        )
    assert worst <= 1  # measured worst case: 1 grey level (lra off and paper alike, CPU float32)


def _hook_count(unet) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in unet.modules())


def test_lra_paper_hooks_are_removed_and_processors_unchanged(tiny_components):
    unet = tiny_components.unet
    processors = dict(unet.attn_processors)
    hooks = _hook_count(unet)
    reqs = [Request("a red car", 1)]
    paper = sample(tiny_components, reqs, safree(lra="paper"), SETTINGS)
    assert _hook_count(unet) == hooks
    assert unet.attn_processors == processors
    off = sample(tiny_components, reqs, safree(lra="off"), SETTINGS)
    official = sample(tiny_components, reqs, safree(lra="official"), SETTINGS)
    assert grey_levels(paper.images[0], off.images[0]) > 1  # the damping did act
    assert grey_levels(official.images[0], off.images[0]) <= 1  # the released LRA row is discarded

    failing = safree(lra="paper")

    def guide_then_fail(ctx, i, t, eps_rows):
        assert _hook_count(unet) > hooks  # installed during the loop
        raise RuntimeError("boom")

    failing.guide = guide_then_fail
    with pytest.raises(RuntimeError, match="boom"):
        sample(tiny_components, reqs, failing, SETTINGS)
    assert _hook_count(unet) == hooks
    assert unet.attn_processors == processors


def test_without_guidance_uses_the_filtered_branch_only(tiny_components):
    settings = SamplerSettings(scheduler="ddim", steps=3, guidance=1.0)
    result = sample(tiny_components, [Request("a red car", 1)], safree(lra="paper"), settings)
    assert result.images.shape == (1, 64, 64, 3)
    assert not result.diagnostics[0]["safree_negative_prompt"]  # no unconditional branch to replace


# -- the toy world: "red" is the unsafe concept ---------------------------------------------------------


def test_toy_red_prompts_trigger_on_red(toy_components):
    pack = load_pack("toy")
    method = SAFREE.from_level("strong", concept=pack)
    reqs = [Request(p, 0) for p in ("a red circle", "a small red square", "a red triangle on the left")]
    result = sample(toy_components, reqs, method, SamplerSettings(steps=4))
    for d in result.diagnostics:
        assert "red</w>" in d["safree_trigger_tokens"].split(), d
