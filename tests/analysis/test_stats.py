"""stats.py against values worked out by hand (and a p-value from numerical integration of the t density)."""

import math

import pytest

from cifar_utils.analysis import stats

A = [1, 2, 3, 4, 5]  # mean 3, variance 2.5
B = [2, 4, 6, 8, 10]  # mean 6, variance 10


def test_summary_mean_std_and_t_interval():
    s = stats.summarize(A)
    assert (s.n, s.mean) == (5, 3.0)
    assert s.std == pytest.approx(math.sqrt(2.5))  # sample std, n - 1
    assert s.sem == pytest.approx(math.sqrt(2.5 / 5))
    half = 2.7764451 * math.sqrt(0.5)  # t(0.975, df=4) x sem
    assert (s.ci_low, s.ci_high) == pytest.approx((3 - half, 3 + half), abs=1e-6)
    assert s.half_width == pytest.approx(half, abs=1e-6)


def test_wider_confidence_gives_a_wider_interval():
    assert (
        stats.summarize(A, 0.99).half_width > stats.summarize(A, 0.95).half_width > stats.summarize(A, 0.5).half_width
    )


def test_one_value_has_no_spread():
    s = stats.summarize([0.8])
    assert s.mean == 0.8 and s.n == 1
    assert all(math.isnan(v) for v in (s.std, s.sem, s.ci_low, s.ci_high))
    assert stats.format_interval(s) == "80.00 (n=1)"


def test_welch_t_df_p_and_interval():
    c = stats.welch_test(A, B)
    se = math.sqrt(2.5 / 5 + 10 / 5)
    df = (0.5 + 2) ** 2 / (0.5**2 / 4 + 2**2 / 4)  # Welch-Satterthwaite: 5.882...
    assert c.difference == pytest.approx(-3)
    assert c.t == pytest.approx(-3 / se)
    assert c.df == pytest.approx(df)
    assert c.p_value == pytest.approx(0.1075312, abs=1e-6)
    half = 2.4588237 * se  # t(0.975, df=5.882)
    assert (c.ci_low, c.ci_high) == pytest.approx((-3 - half, -3 + half), abs=1e-5)
    assert not c.significant()  # the interval holds 0
    assert c.ci_low < 0 < c.ci_high


def test_welch_with_one_arm_that_never_varies_is_exact_and_quiet():
    """Seeds of one arm that all scored the same: the test stays defined, and no RuntimeWarning reaches the notebook."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = stats.welch_test([0.9, 0.9, 0.9], [0.881, 0.882, 0.883])
    se = math.sqrt(1e-6 / 3)  # only the second arm varies: its variance 1e-6 over n = 3
    assert c.t == pytest.approx(0.018 / se) and c.df == pytest.approx(2)
    assert c.p_value == pytest.approx(2 * sp.t.sf(0.018 / se, 2))


def test_welch_is_antisymmetric():
    ab, ba = stats.welch_test(A, B), stats.welch_test(B, A)
    assert ba.difference == pytest.approx(-ab.difference)
    assert ba.p_value == pytest.approx(ab.p_value)
    assert (ba.ci_low, ba.ci_high) == pytest.approx((-ab.ci_high, -ab.ci_low))


def test_welch_with_unequal_spread_uses_fewer_degrees_of_freedom_than_pooled():
    tight, wide = [10.1, 10.3, 9.9, 10.2], [8.0, 12.5, 9.0, 11.0, 7.5, 13.0]
    c = stats.welch_test(tight, wide)
    assert c.df == pytest.approx(5.0798085, abs=1e-6)
    assert c.df < len(tight) + len(wide) - 2
    assert c.p_value == pytest.approx(0.9669777, abs=1e-6)


def test_clearly_separated_groups_are_significant_and_the_sentence_says_so():
    better, worse = [0.80, 0.81, 0.79, 0.805, 0.795], [0.70, 0.71, 0.69, 0.705, 0.695]
    c = stats.welch_test(better, worse)
    assert c.significant() and c.p_value < 1e-6
    assert c.difference == pytest.approx(0.10)
    sentence = stats.verdict("flip", "none", c)
    assert sentence.startswith("flip vs none: +10.00 points of test accuracy, larger than the seed-to-seed spread")
    assert "n=5 and 5" in sentence


def test_overlapping_groups_are_called_indistinguishable():
    sentence = stats.verdict("flip", "none", stats.welch_test(A, B))
    assert "not distinguishable from the seed-to-seed spread" in sentence and "p = 0.108" in sentence


def test_groups_without_spread_cannot_be_judged():
    c = stats.welch_test([0.5, 0.5], [0.6, 0.6])
    assert c.difference == pytest.approx(-0.1)
    assert math.isnan(c.p_value) and not c.significant()
    assert "cannot tell" in stats.verdict("x", "y", c)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: stats.welch_test([1.0], [1.0, 2.0]), "at least two values per group"),
        (lambda: stats.summarize([]), "at least one value"),
        (lambda: stats.summarize([1.0, float("nan")]), "finite"),
        (lambda: stats.summarize(A, confidence=95), "between 0 and 1"),
    ],
)
def test_bad_input_is_refused_with_a_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- paired, Holm, TOST

from scipy import stats as sp  # noqa: E402  (the reference the paired test and TOST are checked against)

BASE = [0.70, 0.75, 0.68, 0.73, 0.71]  # one arm's accuracy by seed: the seeds differ a lot
SHIFTED = [0.710, 0.762, 0.689, 0.741, 0.720]  # the same seeds, about one point better each


def test_paired_test_agrees_with_scipys_ttest_rel_and_its_interval():
    c = stats.paired_test(SHIFTED, BASE)
    ref = sp.ttest_rel(SHIFTED, BASE)
    low, high = ref.confidence_interval(0.95)
    assert (c.t, c.p_value, c.df) == pytest.approx((ref.statistic, ref.pvalue, 4))
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high))
    assert c.difference == pytest.approx(0.0104)
    assert c.se == pytest.approx(sp.sem([s - b for s, b in zip(SHIFTED, BASE)]))
    assert c.test == "paired" and c.n_a == c.n_b == 5


def test_pairing_resolves_what_welch_cannot_when_the_seed_dominates():
    paired, welch = stats.paired_test(SHIFTED, BASE), stats.welch_test(SHIFTED, BASE)
    assert paired.difference == pytest.approx(welch.difference)
    assert paired.p_value < 0.001 < 0.5 < welch.p_value
    assert paired.significant() and not welch.significant()


def test_paired_test_refuses_unmatched_or_single_seeds():
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least two seeds"):
        stats.paired_test([1.0], [2.0])


def test_constant_differences_leave_the_paired_test_undefined():
    c = stats.paired_test([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert c.difference == pytest.approx(0.1) and math.isnan(c.p_value) and not c.significant()
    assert "cannot tell" in stats.verdict("x", "y", c, equivalence=stats.tost(c, 0.005))


def test_welch_records_its_standard_error():
    assert stats.welch_test(A, B).se == pytest.approx(math.sqrt(2.5 / 5 + 10 / 5))


def test_holm_against_the_textbook_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> made monotone: 0.06 for the last
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_leaves_one_p_alone_and_skips_nan():
    assert stats.holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert stats.holm([0.7, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.012]) == pytest.approx([0.012])
    adjusted = stats.holm([0.01, float("nan"), 0.02])  # m = 2, not 3
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02) and math.isnan(adjusted[1])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        stats.holm([0.5, 1.5])


def test_tost_of_a_paired_comparison_is_the_larger_of_two_one_sided_scipy_tests():
    d = [s - b for s, b in zip(SHIFTED, BASE)]
    for delta in (0.005, 0.012, 0.03):
        expected = max(
            sp.ttest_1samp(d, -delta, alternative="greater").pvalue, sp.ttest_1samp(d, delta, alternative="less").pvalue
        )
        assert stats.tost(stats.paired_test(SHIFTED, BASE), delta).p_value == pytest.approx(expected)


def test_tost_of_a_welch_comparison_matches_shifted_one_sided_welch_tests():
    x, y, delta = [0.80, 0.81, 0.79, 0.805], [0.801, 0.79, 0.80, 0.812, 0.797], 0.02
    expected = max(
        sp.ttest_ind([v + delta for v in x], y, equal_var=False, alternative="greater").pvalue,
        sp.ttest_ind([v - delta for v in x], y, equal_var=False, alternative="less").pvalue,
    )
    e = stats.tost(stats.welch_test(x, y), delta)
    assert e.p_value == pytest.approx(expected) and e.equivalent


def test_equivalence_is_claimed_only_when_the_shown_interval_lies_inside_the_margin():
    k = 0.001
    base = [0.7] * 5
    arm = [0.7 + k * i for i in (-2, -1, 0, 1, 2)]  # differences: mean 0, se = k * sqrt(0.5)
    c = stats.paired_test(arm, base)
    delta = 2.4 * c.se  # between t(0.95, 4) = 2.13 and t(0.975, 4) = 2.78 standard errors
    e = stats.tost(c, delta)
    ninety = stats.paired_test(arm, base, confidence=0.90)
    assert e.p_value < 0.05 and -delta < ninety.ci_low and ninety.ci_high < delta  # the textbook 90% rule says yes
    assert c.ci_high > delta and not e.equivalent  # the 95% interval shown reaches past the margin: no claim
    assert stats.tost(c, 3 * c.se).equivalent  # a margin beyond the 95% interval: equivalent


def test_tost_refuses_a_margin_that_is_not_positive():
    with pytest.raises(ValueError, match="positive"):
        stats.tost(stats.paired_test(SHIFTED, BASE), 0)


def test_the_judged_sentences_say_effect_equivalence_or_not_resolvable():
    c = stats.paired_test(SHIFTED, BASE)
    said = stats.verdict("flip", "none", c, p_adjusted=0.004, equivalence=stats.tost(c, 0.005), detectable=0.004)
    assert said.startswith("flip raises test accuracy by 1.04 points against none") and "Holm-corrected 0.004" in said
    equal = stats.paired_test([b + 1e-4 * s for b, s in zip(BASE, (-1, 1, 0, 1, -1))], BASE)
    said = stats.verdict("flip", "none", equal, p_adjusted=1.0, equivalence=stats.tost(equal, 0.005))
    assert "is equivalent to none within ±0.50 points" in said
    wide = stats.paired_test([0.70, 0.76, 0.67, 0.74, 0.70], BASE)
    said = stats.verdict("flip", "none", wide, p_adjusted=0.9, equivalence=stats.tost(wide, 0.005), detectable=0.012)
    assert "not resolvable at this budget" in said and "holds 0 and reaches past the ±0.50-point margin" in said
    assert "n=5 seeds detect about 1.20 points at 80% power" in said
