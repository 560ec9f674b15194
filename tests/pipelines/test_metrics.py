"""pipelines.metrics against hand-computed and published values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.metrics import (
    bootstrap_rate_ci,
    expected_max_inappropriateness,
    two_proportion_test,
    wilson_interval,
)


# -- Wilson ------------------------------------------------------------------------------------------------
def test_wilson_half_rate_by_hand():
    # given 4 of 8: p = 0.5, z^2/n = 3.8415/8 = 0.48019, centre 0.5,
    # half = 1.96 sqrt(0.25/8 + 3.8415/256) / 1.48019 = 1.96 * 0.21507 / 1.48019 = 0.28479
    low, high = wilson_interval(4, 8)
    assert low == pytest.approx(0.2152, abs=1e-4)
    assert high == pytest.approx(0.7848, abs=1e-4)


def test_wilson_zero_rate_upper_bound_is_z2_over_n_plus_z2():
    # given 0 of 10: the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.27753; the lower is exactly 0
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert wilson_interval(10, 10) == (pytest.approx(1 - 0.27753, abs=1e-5), 1.0)


def test_wilson_no_trials_and_bad_input():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


# -- bootstrap ---------------------------------------------------------------------------------------------
def test_bootstrap_two_units_by_hand():
    # given units (1) and (0): a resample of 2 has rate 0, 0.5, 1 with probability 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles are 0 and 1
    ci = bootstrap_rate_ci([1, 0], n_boot=4000, seed=7)
    assert (ci.rate, ci.low, ci.high) == (0.5, 0.0, 1.0)


def test_bootstrap_all_unsafe_and_all_safe_are_degenerate():
    assert bootstrap_rate_ci([1, 1, 1]).low == 1.0
    assert bootstrap_rate_ci([0, 0, 0, 0]).high == 0.0


def test_bootstrap_resamples_prompts_as_clusters():
    # given 2 prompts with 3/4 and 1/4 unsafe images: resampled rates are 3/4, 1/2, 1/4 (ratio of sums)
    ci = bootstrap_rate_ci([3, 1], [4, 4], n_boot=4000, seed=1)
    assert ci.rate == 0.5
    assert (ci.low, ci.high) == (0.25, 0.75)


def test_bootstrap_is_seeded_and_close_to_wilson_for_large_n():
    rng = np.random.default_rng(0)
    flags = (rng.random(2000) < 0.3).astype(int)
    a = bootstrap_rate_ci(flags, seed=11)
    b = bootstrap_rate_ci(flags, seed=11)
    assert a == b
    wl, wh = wilson_interval(flags.sum(), flags.size)
    assert a.low == pytest.approx(wl, abs=0.005) and a.high == pytest.approx(wh, abs=0.005)


def test_bootstrap_empty_and_mismatched():
    assert math.isnan(bootstrap_rate_ci([]).rate)
    with pytest.raises(ValueError):
        bootstrap_rate_ci([1, 0], [1])


# -- expected maximum inappropriateness --------------------------------------------------------------------
def test_emi_three_prompts_draw_two_by_hand():
    # given per-prompt unsafe % 0, 50, 100 and draws of 2: the subsets {0,50} {0,100} {50,100} have maxima
    # 50, 100, 100, so E[max] = 250/3 = 83.33 and std = sqrt((50^2 + 2*100^2)/3 - (250/3)^2) = 23.57
    emi = expected_max_inappropriateness([100, 0, 50], draw_size=2, n_draws=20_000, seed=3)
    assert emi.exact_mean == pytest.approx(250 / 3)
    assert emi.mean == pytest.approx(250 / 3, abs=0.8)
    assert emi.std == pytest.approx(math.sqrt(22500 / 3 - (250 / 3) ** 2), abs=0.4)
    assert (emi.n_prompts, emi.draw_size, emi.n_draws) == (3, 2, 20_000)


def test_emi_matches_explicit_draws_without_replacement():
    # the reference procedure: 25 distinct prompts per draw, max of each draw
    rng = np.random.default_rng(5)
    values = rng.integers(0, 11, size=60) * 10.0
    draws = np.array([values[rng.choice(60, 25, replace=False)].max() for _ in range(4000)])
    emi = expected_max_inappropriateness(values, seed=9)
    se = draws.std() / math.sqrt(draws.size)
    assert emi.exact_mean == pytest.approx(draws.mean(), abs=4 * se)
    assert emi.mean == pytest.approx(draws.mean(), abs=4 * se + 4 * emi.std / math.sqrt(emi.n_draws))
    assert emi.std == pytest.approx(draws.std(), rel=0.1)


def test_emi_fewer_prompts_than_draw_size_takes_all():
    emi = expected_max_inappropriateness([10.0, 30.0, 20.0])
    assert (emi.mean, emi.std, emi.exact_mean, emi.draw_size) == (30.0, 0.0, 30.0, 3)


def test_emi_seeded_and_input_checks():
    v = np.arange(100.0)
    assert expected_max_inappropriateness(v, seed=1) == expected_max_inappropriateness(v, seed=1)
    assert math.isnan(expected_max_inappropriateness([]).mean)
    with pytest.raises(ValueError):
        expected_max_inappropriateness([1.0, float("nan")])


# -- two proportions ---------------------------------------------------------------------------------------
def test_two_proportion_z_by_hand():
    # given 15/100 then 30/100: pooled 0.225, se = sqrt(0.225 * 0.775 * 0.02) = 0.059055,
    # z = 0.15 / 0.059055 = 2.5400, two-sided p = erfc(2.54 / sqrt 2) = 0.01109
    t = two_proportion_test(15, 100, 30, 100)
    assert t.diff == pytest.approx(0.15)
    assert t.z == pytest.approx(2.5400, abs=1e-4)
    assert t.p_value == pytest.approx(0.01109, abs=1e-5)
    assert t.significant and t.regressed


def test_two_proportion_newcombe_interval_matches_published_example():
    # Newcombe (1998), Stat Med 17:873, example 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    t = two_proportion_test(48, 80, 56, 70)
    assert t.diff_low == pytest.approx(0.0524, abs=1e-4)
    assert t.diff_high == pytest.approx(0.3339, abs=1e-4)


def test_two_proportion_improvement_and_no_change():
    better = two_proportion_test(30, 100, 15, 100)
    assert better.significant and not better.regressed
    assert two_proportion_test(30, 100, 15, 100, higher_is_worse=False).regressed
    same = two_proportion_test(0, 10, 0, 12)
    assert (same.z, same.p_value, same.significant) == (0.0, 1.0, False)
    small = two_proportion_test(2, 8, 5, 8)  # the fixture's run-to-run change: not significant at n = 8
    assert not small.significant and small.diff == pytest.approx(0.375)
    with pytest.raises(ValueError):
        two_proportion_test(1, 0, 1, 2)
