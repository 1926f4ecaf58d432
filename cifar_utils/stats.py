"""Statistics for multi-seed results: summaries with t-intervals, and Welch's comparison of two groups.

Seeds give a handful of numbers per configuration (n = 3 to 5), so the intervals use Student's t
rather than the normal distribution, and two configurations are compared with Welch's t-test,
which does not assume the two have the same seed-to-seed spread. scipy supplies the distributions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """n values: mean, sample standard deviation (n - 1), standard error and a t confidence interval."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


@dataclass(frozen=True)
class Comparison:
    """Welch's t-test of mean(a) - mean(b): the difference, its confidence interval, t, df and p."""

    difference: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p_value: float
    n_a: int
    n_b: int
    confidence: float = 0.95

    def significant(self, alpha: float = 0.05) -> bool:
        """True when the difference is larger than seed-to-seed spread explains (p < alpha)."""
        return not math.isnan(self.p_value) and self.p_value < alpha


def _values(values, name: str = "values") -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers, got {array.tolist()}")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")


def summarize(values, confidence: float = 0.95) -> Summary:
    """Mean and a two-sided t confidence interval; with one value the spread is unknown (NaN)."""
    from scipy import stats

    _check_confidence(confidence)
    x = _values(values)
    n = len(x)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, math.nan, confidence)
    std = float(x.std(ddof=1))
    sem = std / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem
    return Summary(n, mean, std, sem, mean - half, mean + half, confidence)


def welch_test(a, b, confidence: float = 0.95) -> Comparison:
    """Welch's unequal-variance t-test of mean(a) - mean(b), two-sided.

    Needs at least two values in each group. When neither group varies at all, the test is
    undefined: t, df, p and the interval are NaN, and `verdict` says it cannot tell.
    """
    from scipy import stats

    _check_confidence(confidence)
    x, y = _values(a, "a"), _values(b, "b")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"Welch's t-test needs at least two values per group (seeds), got {len(x)} and {len(y)}")
    difference = float(x.mean() - y.mean())
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(difference, math.nan, math.nan, math.nan, math.nan, math.nan, len(x), len(y), confidence)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))  # Welch-Satterthwaite
    result = stats.ttest_ind(x, y, equal_var=False)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Comparison(difference, difference - half, difference + half, float(result.statistic), float(df),
                      float(result.pvalue), len(x), len(y), confidence)


def format_interval(summary: Summary, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std [ci_low, ci_high]', scaled (100: fractions as percentages)."""
    if summary.n < 2:
        return f"{scale * summary.mean:.{digits}f} (n=1)"
    return (f"{scale * summary.mean:.{digits}f} ± {scale * summary.std:.{digits}f} "
            f"[{scale * summary.ci_low:.{digits}f}, {scale * summary.ci_high:.{digits}f}]")


def verdict(name: str, reference: str, comparison: Comparison, what: str = "test accuracy", alpha: float = 0.05) -> str:
    """One sentence: is `name` different from `reference` by more than the seed-to-seed spread?"""
    d = 100 * comparison.difference
    interval = (f"{comparison.confidence:.0%} CI of the difference [{100 * comparison.ci_low:+.2f}, "
                f"{100 * comparison.ci_high:+.2f}] points")
    counts = f"n={comparison.n_a} and {comparison.n_b}"
    if math.isnan(comparison.p_value):
        return (f"{name} vs {reference}: {d:+.2f} points of {what}; no seed-to-seed spread to compare it with "
                f"({counts}), so the test cannot tell.")
    judged = ("larger than the seed-to-seed spread" if comparison.significant(alpha)
              else "not distinguishable from the seed-to-seed spread")
    return (f"{name} vs {reference}: {d:+.2f} points of {what}, {judged} (Welch's t-test p = {comparison.p_value:.3g}, "
            f"{interval}, {counts}).")
