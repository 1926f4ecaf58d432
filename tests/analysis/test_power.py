"""power.py against textbook values (Cohen 1988; G*Power) and against its own definitions."""

import math

import pytest
from scipy import stats as sp

from cifar_utils.analysis import stats_power as P


def test_cohens_two_group_example_64_per_group_for_half_an_sd():
    assert P.power_at(0.5, 1.0, 64, paired=False) == pytest.approx(0.8015, abs=5e-4)
    assert P.seeds_needed(1.0, 0.5, paired=False) == 64
    assert P.minimal_detectable_effect(1.0, 64, paired=False) == pytest.approx(0.4991, abs=5e-4)


def test_one_sample_example_34_pairs_for_half_an_sd():
    assert P.power_at(0.5, 1.0, 34) == pytest.approx(0.8078, abs=5e-4)  # G*Power: one-sample t, d = 0.5
    assert P.seeds_needed(1.0, 0.5) == 34


def test_the_issues_numbers_sd_2_1_and_5_seeds_per_arm():
    assert P.minimal_detectable_effect(2.1, 5, paired=False) == pytest.approx(4.25, abs=0.01)
    assert P.power_at(1.0, 2.1, 5, paired=False) == pytest.approx(0.10, abs=0.005)


def test_no_effect_is_found_at_the_rate_alpha():
    assert P.power_at(0.0, 1.3, 7) == pytest.approx(0.05)
    assert P.power_at(0.0, 1.3, 7, alpha=0.01) == pytest.approx(0.01)


def test_the_detectable_effect_has_the_asked_power_and_scales_with_sd():
    mde = P.minimal_detectable_effect(0.6, 8)
    assert P.power_at(mde, 0.6, 8) == pytest.approx(0.8, abs=1e-9)
    assert P.minimal_detectable_effect(1.2, 8) == pytest.approx(2 * mde)
    assert P.minimal_detectable_effect(0.6, 8, power=0.9) > mde > P.minimal_detectable_effect(0.6, 16)


def test_large_n_approaches_the_normal_formula():
    n, z = 20000, sp.norm.ppf(0.975) + sp.norm.ppf(0.8)
    assert P.minimal_detectable_effect(1.0, n, paired=False) == pytest.approx(z * math.sqrt(2 / n), rel=1e-3)


def test_seeds_needed_is_the_first_n_with_enough_power():
    for sd, effect in ((0.8, 1.0), (2.1, 1.0), (0.3, 1.0)):
        n = P.seeds_needed(sd, effect)
        assert P.power_at(effect, sd, n) >= 0.8
        assert n == 2 or P.power_at(effect, sd, n - 1) < 0.8


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: P.power_at(1.0, 0.0, 5), "positive number"),
        (lambda: P.power_at(1.0, 1.0, 1), "at least 2"),
        (lambda: P.minimal_detectable_effect(1.0, 5, power=0.01), "between alpha"),
        (lambda: P.seeds_needed(1.0, 0.0), "effect to detect"),
        (lambda: P.seeds_needed(100.0, 1e-3, most=1000), "more than 1,000 seeds"),
    ],
)
def test_bad_input_is_refused_with_a_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()
