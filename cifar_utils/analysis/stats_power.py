"""What n seeds can detect: power of the t-test, the minimal detectable effect, and the seeds a target needs.

Before a comparison runs, a pilot's seed-to-seed SD says how small a difference n seeds can
resolve (80% power at alpha 0.05 by default). Paired designs (the same seeds in both arms) use
the SD of the per-seed differences and a one-sample t-test on them (df = n - 1); two independent
arms of n seeds each use their common SD and df = 2n - 2. Power comes from the noncentral t
distribution (scipy), exactly, not the normal approximation, which flatters small n.

Without a pilot of paired differences, an SD of single runs gives the differences' SD as
sd * sqrt(2 * (1 - r)), r the correlation the shared seed induces; r = 0 (sqrt(2) * sd) is the
cautious choice.
"""

from __future__ import annotations

import math


def _check(sd: float, n: int | None = None, alpha: float = 0.05, power: float | None = None) -> None:
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd > 0):
        raise ValueError(f"the standard deviation must be a positive number (from a pilot's seeds), got {sd!r}")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 2):
        raise ValueError(f"n must be a whole number of at least 2 seeds, got {n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (e.g. 0.05), got {alpha!r}")
    if power is not None and not alpha < power < 1:
        raise ValueError(f"power must be between alpha ({alpha}) and 1 (e.g. 0.8), got {power!r}")


def _df_and_scale(n: int, paired: bool) -> tuple[int, float]:
    """Degrees of freedom, and the standard error of the difference per unit of SD."""
    return (n - 1, 1 / math.sqrt(n)) if paired else (2 * n - 2, math.sqrt(2 / n))


def power_at(effect: float, sd: float, n: int, alpha: float = 0.05, paired: bool = True) -> float:
    """The chance that a two-sided t-test at `alpha` finds a true difference `effect` with n seeds.

    `paired`: n pairs, `sd` the SD of their differences; else two arms of n seeds each with SD `sd`.
    """
    from scipy import stats

    _check(sd, n, alpha)
    df, scale = _df_and_scale(n, paired)
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(effect) / (sd * scale)  # the noncentrality
    upper = float(stats.nct.sf(critical, df, shift))
    lower = float(stats.nct.cdf(-critical, df, shift))  # the wrong-sign tail; scipy gives NaN once it underflows
    return upper + (0.0 if math.isnan(lower) else lower)


def minimal_detectable_effect(sd: float, n: int, power: float = 0.8, alpha: float = 0.05, paired: bool = True) -> float:
    """The smallest difference n seeds find with probability `power` (two-sided test at `alpha`), in sd's units."""
    from scipy import optimize

    _check(sd, n, alpha, power)
    high = sd
    while power_at(high, sd, n, alpha, paired) < power:  # the bracket grows until it holds the answer
        high *= 2
    return float(optimize.brentq(lambda e: power_at(e, sd, n, alpha, paired) - power, 0.0, high, xtol=1e-12 * sd))


def seeds_needed(
    sd: float, effect: float, power: float = 0.8, alpha: float = 0.05, paired: bool = True, most: int = 1_000_000
) -> int:
    """The fewest seeds (per arm; pairs when `paired`) that detect `effect` with probability `power`."""
    _check(sd, None, alpha, power)
    if not (isinstance(effect, (int, float)) and math.isfinite(effect) and effect > 0):
        raise ValueError(f"the effect to detect must be a positive number, got {effect!r}")
    low, high = 2, 2
    while power_at(effect, sd, high, alpha, paired) < power:  # power grows with n: double, then bisect
        if high >= most:
            raise ValueError(
                f"more than {most:,} seeds would be needed to detect {effect:g} with SD {sd:g}; "
                f"reduce the SD (pairing, longer schedules, more data) or aim at a larger effect"
            )
        low, high = high, min(2 * high, most)
    if power_at(effect, sd, low, alpha, paired) >= power:
        return low
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power_at(effect, sd, middle, alpha, paired) >= power else (middle, high)
    return high
