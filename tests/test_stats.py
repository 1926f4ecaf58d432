"""stats.py against values worked out by hand (and a p-value from numerical integration of the t density)."""
import math

import pytest

from cifar_utils import stats

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
    assert stats.summarize(A, 0.99).half_width > stats.summarize(A, 0.95).half_width > stats.summarize(A, 0.5).half_width


def test_one_value_has_no_spread():
    s = stats.summarize([0.8])
    assert s.mean == 0.8 and s.n == 1
    assert all(math.isnan(v) for v in (s.std, s.sem, s.ci_low, s.ci_high))
    assert stats.format_interval(s) == "80.00 (n=1)"


def test_welch_t_df_p_and_interval():
    c = stats.welch_test(A, B)
    se = math.sqrt(2.5 / 5 + 10 / 5)
    df = (0.5 + 2) ** 2 / (0.5 ** 2 / 4 + 2 ** 2 / 4)  # Welch-Satterthwaite: 5.882...
    assert c.difference == pytest.approx(-3)
    assert c.t == pytest.approx(-3 / se)
    assert c.df == pytest.approx(df)
    assert c.p_value == pytest.approx(0.1075312, abs=1e-6)
    half = 2.4588237 * se  # t(0.975, df=5.882)
    assert (c.ci_low, c.ci_high) == pytest.approx((-3 - half, -3 + half), abs=1e-5)
    assert not c.significant()  # the interval holds 0
    assert c.ci_low < 0 < c.ci_high


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


@pytest.mark.parametrize("call, message", [
    (lambda: stats.welch_test([1.0], [1.0, 2.0]), "at least two values per group"),
    (lambda: stats.summarize([]), "at least one value"),
    (lambda: stats.summarize([1.0, float("nan")]), "finite"),
    (lambda: stats.summarize(A, confidence=95), "between 0 and 1"),
])
def test_bad_input_is_refused_with_a_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()
