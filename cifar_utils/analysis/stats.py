"""Statistics for multi-seed results: summaries with t-intervals, paired and Welch comparisons,
Holm's correction across a table, and equivalence (TOST) at a stated margin.

Seeds give a handful of numbers per configuration (n = 3 to 10), so the intervals use Student's t
rather than the normal distribution. When two arms ran the same seeds (same initialisation and
data order), the paired t-test on the per-seed differences is the test: the seed's own luck
cancels. Welch's t-test, which ignores the pairing and does not assume equal spreads, is the
check. "No effect" is only ever said through `tost`: an interval that lies inside +-delta.
scipy supplies the distributions; power.py says what a given n can detect.
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
    """A t-test of mean(a) - mean(b): the difference, its confidence interval, t, df, p and the standard
    error; `test` names it ("Welch" for two groups, "paired" for per-seed differences)."""

    difference: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p_value: float
    n_a: int
    n_b: int
    confidence: float = 0.95
    se: float = math.nan
    test: str = "Welch"

    @property
    def test_name(self) -> str:
        return "paired t-test" if self.test == "paired" else "Welch's t-test"

    def significant(self, alpha: float = 0.05) -> bool:
        """True when the difference is larger than seed-to-seed spread explains (p < alpha)."""
        return not math.isnan(self.p_value) and self.p_value < alpha


_ROUNDING = 64 * np.finfo(float).eps  # differences of equal shifts vary by about this much, relative to the values


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
        return Comparison(difference, math.nan, math.nan, math.nan, math.nan, math.nan, len(x), len(y), confidence, 0.0)
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))  # Welch-Satterthwaite
    # t and p from the variances above rather than scipy's ttest_ind, which recomputes them and warns of
    # "catastrophic cancellation" whenever one arm's seeds all scored the same (common with few seeds).
    t = difference / se
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Comparison(difference, difference - half, difference + half, t, float(df), p, len(x), len(y), confidence, se)


def paired_test(a, b, confidence: float = 0.95) -> Comparison:
    """The paired t-test of a - b: `a[i]` and `b[i]` come from the same seed (initialisation, data order).

    It is a one-sample t-test of the n differences (df = n - 1), so it gains whatever the two arms'
    results share through their seed. Needs at least two pairs; identical differences leave the
    test undefined (NaN), as in `welch_test`.
    """
    from scipy import stats

    _check_confidence(confidence)
    x, y = _values(a, "a"), _values(b, "b")
    if len(x) != len(y):
        raise ValueError(
            f"a paired test needs one value per seed in each arm, got {len(x)} and {len(y)} values; "
            f"compare the seeds both arms ran"
        )
    if len(x) < 2:
        raise ValueError(f"a paired test needs at least two seeds, got {len(x)}")
    d = x - y
    n, difference = len(d), float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se <= _ROUNDING * max(1.0, float(np.abs(x).max()), float(np.abs(y).max())):  # equal shifts, up to rounding
        return Comparison(difference, math.nan, math.nan, math.nan, math.nan, math.nan, n, n, confidence, 0.0, "paired")
    result = stats.ttest_rel(x, y)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Comparison(
        difference,
        difference - half,
        difference + half,
        float(result.statistic),
        float(n - 1),
        float(result.pvalue),
        n,
        n,
        confidence,
        se,
        "paired",
    )


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values that share one table (family-wise error at alpha).

    The k-th smallest of m p-values is multiplied by m - k + 1, then made non-decreasing along that
    order and capped at 1. NaN (an undefined test) stays NaN and does not count towards m.
    """
    p = np.asarray(list(p_values), dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be a flat sequence of numbers in [0, 1], got {p.tolist()}")
    adjusted = np.full_like(p, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of |mean difference| < delta, from a `Comparison`.

    `p_value` is the larger of the two one-sided p-values. `equivalent` is claimed only when that p is
    below alpha AND the comparison's own interval lies inside (-delta, +delta): with a 95% interval
    that is TOST at 2.5% a side, stricter than the textbook 90% interval, so no table ever shows an
    interval that reaches past the margin beside the word "equivalent".
    """

    delta: float
    p_value: float
    equivalent: bool


def tost(comparison: Comparison, delta: float, alpha: float = 0.05) -> Equivalence:
    """Equivalence of the compared arms within +-delta (the units of the values, e.g. 0.005 = half a point)."""
    from scipy import stats

    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
        raise ValueError(f"the equivalence margin delta must be a positive number, got {delta!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (e.g. 0.05), got {alpha!r}")
    c = comparison
    if math.isnan(c.df) or not c.se > 0:
        return Equivalence(float(delta), math.nan, False)
    p_above_lower = float(stats.t.sf((c.difference + delta) / c.se, c.df))  # H0: difference <= -delta
    p_below_upper = float(stats.t.cdf((c.difference - delta) / c.se, c.df))  # H0: difference >= +delta
    p = max(p_above_lower, p_below_upper)
    return Equivalence(float(delta), p, bool(p < alpha and -delta < c.ci_low and c.ci_high < delta))


def format_interval(summary: Summary, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std [ci_low, ci_high]', scaled (100: fractions as percentages)."""
    if summary.n < 2:
        return f"{scale * summary.mean:.{digits}f} (n=1)"
    return (
        f"{scale * summary.mean:.{digits}f} ± {scale * summary.std:.{digits}f} "
        f"[{scale * summary.ci_low:.{digits}f}, {scale * summary.ci_high:.{digits}f}]"
    )


def verdict(
    name: str,
    reference: str,
    comparison: Comparison,
    what: str = "test accuracy",
    alpha: float = 0.05,
    p_adjusted: float | None = None,
    equivalence: Equivalence | None = None,
    detectable: float | None = None,
) -> str:
    """One sentence: is `name` different from `reference` by more than the seed-to-seed spread?

    Values are fractions, said in points (x100). `p_adjusted` (Holm's, across the table) decides
    instead of the raw p when given; `equivalence` (from `tost`) allows "equivalent within +-delta";
    `detectable`, the minimal detectable effect at this n (power.py), names the budget's reach when
    neither a difference nor an equivalence is shown.
    """
    if p_adjusted is not None or equivalence is not None or detectable is not None:
        return _judged(name, reference, comparison, what, alpha, p_adjusted, equivalence, detectable)
    d = 100 * comparison.difference
    interval = (
        f"{comparison.confidence:.0%} CI of the difference [{100 * comparison.ci_low:+.2f}, "
        f"{100 * comparison.ci_high:+.2f}] points"
    )
    counts = f"n={comparison.n_a} and {comparison.n_b}"
    if math.isnan(comparison.p_value):
        return (
            f"{name} vs {reference}: {d:+.2f} points of {what}; no seed-to-seed spread to compare it with "
            f"({counts}), so the test cannot tell."
        )
    judged = (
        "larger than the seed-to-seed spread"
        if comparison.significant(alpha)
        else "not distinguishable from the seed-to-seed spread"
    )
    return (
        f"{name} vs {reference}: {d:+.2f} points of {what}, {judged} ({comparison.test_name} p = "
        f"{comparison.p_value:.3g}, {interval}, {counts})."
    )


def _judged(name, reference, c: Comparison, what, alpha, p_adjusted, equivalence, detectable) -> str:
    d = 100 * c.difference
    seeds = f"n={c.n_a} seeds" if c.test == "paired" else f"n={c.n_a} and {c.n_b}"
    interval = f"{c.confidence:.0%} CI [{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}]"
    if math.isnan(c.p_value):
        return f"{name} vs {reference}: {d:+.2f} points of {what}; the {seeds} did not vary, so the test cannot tell."
    p = c.p_value if p_adjusted is None else p_adjusted
    p_text = f"{c.test_name} p = {c.p_value:.3g}" + ("" if p_adjusted is None else f", Holm-corrected {p_adjusted:.3g}")
    if p < alpha:
        direction = "raises" if d > 0 else "lowers"
        return f"{name} {direction} {what} by {abs(d):.2f} points against {reference} ({interval}, {p_text}, {seeds})."
    if equivalence is not None and equivalence.equivalent:
        return (
            f"{name} is equivalent to {reference} within ±{100 * equivalence.delta:.2f} points of {what} "
            f"({d:+.2f}, {interval} inside the margin, TOST p = {equivalence.p_value:.3g}, {seeds})."
        )
    reach = (
        f"; {seeds} detect about {100 * detectable:.2f} points at 80% power at Holm's level"
        if detectable is not None
        else ""
    )
    margin = ""
    if equivalence is not None:
        inside = -equivalence.delta < c.ci_low and c.ci_high < equivalence.delta
        margin = (
            f", TOST p = {equivalence.p_value:.3g}"
            if inside
            else f" and reaches past the ±{100 * equivalence.delta:.2f}-point margin"
        )
    zero = "holds 0" if c.ci_low <= 0 <= c.ci_high else "excludes 0 only before the correction for the table"
    return (
        f"{name} vs {reference}: {d:+.2f} points of {what}, not resolvable at this budget ({interval} {zero}"
        f"{margin}, {p_text}{reach})."
    )


def pooled_sd(groups) -> tuple[float, int]:
    """(pooled SD, degrees of freedom) of several groups' values, each around its own mean: the seed-to-seed spread
    of runs that differ only by seed. Groups of one value add nothing; (nan, 0) when no group has two."""
    several = [[float(v) for v in g] for g in groups if len(g) > 1]
    df = sum(len(g) - 1 for g in several)
    if df == 0:
        return math.nan, 0
    squares = sum(sum((v - sum(g) / len(g)) ** 2 for v in g) for g in several)
    return math.sqrt(squares / df), df
