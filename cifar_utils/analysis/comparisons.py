"""A table of arms against one reference, paired by seed: effect, interval, corrected p, reach, equivalence.

Every arm of an ablation ran the same seeds as the reference, so each row is a paired t-test on
the per-seed differences (Welch's test beside it as a check), the rows' p-values are corrected
together (Holm). Two families, each controlled: the differences (Holm over the paired p-values) and
the equivalences (Holm over the TOST p-values at +-delta), so "no effect" is held to the same standard
as "an effect". The reach of a row, the minimal detectable effect at 80% power, is stated at the level
the verdicts use: Holm's first step, alpha / number of rows (the strictest level any row faces).
A row that is neither a difference nor an equivalence is "not resolvable at this budget".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from ..errors import ConfigError
from . import stats
from . import stats_power as P


def _per_seed(frame: pd.DataFrame, by: str, arm, value: str, pair_on: str) -> pd.Series:
    rows = frame[frame[by] == arm]
    repeated = rows[pair_on][rows[pair_on].duplicated()].tolist()
    if repeated:
        raise ConfigError(
            f"{by} = {arm!r} has more than one {value} for {pair_on} {repeated}; "
            f"a paired comparison needs one run per {pair_on} and arm"
        )
    return rows.set_index(pair_on)[value].astype(float)


def compare_arms(
    frame: pd.DataFrame,
    by: str,
    reference,
    value: str = "test_accuracy",
    pair_on: str = "seed",
    delta: float = 0.005,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    what: str = "test accuracy",
    scale: float = 100.0,
) -> pd.DataFrame:
    """One row per arm (value of `by`) other than `reference`, differences arm - reference, in points (x `scale`).

    Columns: n (seeds both ran), mean, delta, ci_low, ci_high, p_paired, p_welch, p_holm (over the
    table's paired p-values), sd_diff, detectable (the minimal detectable effect at n, `power`,
    `alpha`), tost_p, equivalent (within +-`delta`, `value`'s units), and sentence. A row whose
    differences do not vary has NaN tests and says that it cannot tell.
    """
    arms = list(dict.fromkeys(frame[by]))
    if reference not in arms:
        raise ConfigError(f"the reference {reference!r} is not among the {by} values {arms}")
    base = _per_seed(frame, by, reference, value, pair_on)
    rows, comparisons = [], []
    for arm in (a for a in arms if a != reference):
        this = _per_seed(frame, by, arm, value, pair_on)
        seeds = sorted(set(this.index) & set(base.index))
        if len(seeds) < 2:
            raise ConfigError(
                f"{by} = {arm!r} and the reference {reference!r} share {len(seeds)} {pair_on}(s); "
                f"a paired comparison needs at least two: run both arms on the same seeds"
            )
        a, b = this.loc[seeds].to_numpy(), base.loc[seeds].to_numpy()
        paired = stats.paired_test(a, b, confidence)
        welch = stats.welch_test(a, b, confidence)
        sd_diff = float(np.std(a - b, ddof=1))
        comparisons.append((arm, paired, sd_diff, len(seeds)))
        rows.append(
            {
                by: arm,
                "n": len(seeds),
                "mean": scale * float(a.mean()),
                "delta": scale * paired.difference,
                "ci_low": scale * paired.ci_low,
                "ci_high": scale * paired.ci_high,
                "p_paired": paired.p_value,
                "p_welch": welch.p_value,
                "sd_diff": scale * sd_diff,
            }
        )
    holm_level = alpha / max(1, len(rows))  # Holm's first step: what the smallest p must beat
    adjusted = stats.holm([r["p_paired"] for r in rows]) if rows else []
    equivalences = [stats.tost(paired, delta, alpha) for _, paired, _, _ in comparisons]
    tost_holm = stats.holm([e.p_value for e in equivalences]) if rows else []
    for row, p_holm, equivalence, tost_adjusted, (arm, paired, sd_diff, n) in zip(
        rows, adjusted, equivalences, tost_holm, comparisons
    ):
        detectable = P.minimal_detectable_effect(sd_diff, n, power, holm_level) if sd_diff > 0 else math.nan
        tost_raw = equivalence.p_value
        # Equivalent only when the family-corrected TOST p clears alpha (and, as before, the interval is inside).
        equivalence = dataclasses.replace(
            equivalence,
            p_value=float(tost_adjusted),
            equivalent=bool(equivalence.equivalent and tost_adjusted < alpha),
        )
        row.update(
            detectable=scale * detectable,
            p_holm=float(p_holm),
            tost_p_raw=tost_raw,
            tost_p=equivalence.p_value,
            equivalent=equivalence.equivalent,
            sentence=stats.verdict(
                str(arm),
                str(reference),
                paired,
                what,
                alpha,
                p_adjusted=None if math.isnan(p_holm) else float(p_holm),
                equivalence=equivalence,
                detectable=None if math.isnan(detectable) else detectable,
            ),
        )
    columns = [
        by,
        "n",
        "mean",
        "delta",
        "ci_low",
        "ci_high",
        "p_paired",
        "p_welch",
        "p_holm",
        "sd_diff",
        "detectable",
        "tost_p_raw",
        "tost_p",
        "equivalent",
        "sentence",
    ]
    return pd.DataFrame(rows, columns=columns).set_index(by)


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def format_table(table: pd.DataFrame, unit: str = "points") -> pd.DataFrame:
    """`compare_arms`'s table as it is read: differences with their intervals, the p-values, reach and TOST."""
    shown = pd.DataFrame(index=table.index)
    shown["n"] = table["n"]
    shown["mean %"] = table["mean"].map(lambda v: f"{v:.2f}")
    shown[f"Δ {unit} [95% CI]"] = [
        f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" if not math.isnan(lo) else f"{d:+.2f} [n/a]"
        for d, lo, hi in zip(table["delta"], table["ci_low"], table["ci_high"])
    ]
    shown["p paired"] = table["p_paired"].map(_p)
    shown["p Welch"] = table["p_welch"].map(_p)
    shown["p Holm"] = table["p_holm"].map(_p)
    shown[f"detectable {unit} (80% power, Holm level)"] = table["detectable"].map(
        lambda v: "n/a" if math.isnan(v) else f"{v:.2f}"
    )
    shown["TOST p Holm"] = table["tost_p"].map(_p)
    shown["equivalent"] = table["equivalent"].map(lambda e: "yes" if e else "no")
    return shown


def findings(
    table: pd.DataFrame, reference: str, delta: float, what: str = "test accuracy", alpha: float = 0.05
) -> str:
    """One paragraph over the whole table: which arms differ (after Holm), which are equivalent, which cannot tell."""
    if table.empty:
        return f"No arm was compared with {reference}."
    differ = table[table["p_holm"] < alpha]
    equivalent = table[(table["p_holm"] >= alpha) & table["equivalent"]]
    unresolved = table[~table.index.isin(differ.index) & ~table.index.isin(equivalent.index)]
    parts = [
        f"Of {len(table)} comparison{'s' if len(table) != 1 else ''} with {reference} ({what}, paired by seed, "
        f"Holm-corrected at α = {alpha:g}),"
    ]
    if len(differ):
        listed = ", ".join(f"{arm} ({row['delta']:+.2f} points)" for arm, row in differ.sort_values("delta").iterrows())
        parts.append(f"{len(differ)} differ{'s' if len(differ) == 1 else ''} from it: {listed}.")
    else:
        parts.append("none differs from it by more than the seed-to-seed spread.")
    if len(equivalent):
        parts.append(
            f"{', '.join(map(str, equivalent.index))} {'is' if len(equivalent) == 1 else 'are'} equivalent "
            f"to it within ±{100 * delta:.2f} points (TOST, Holm-corrected over the table)."
        )
    if len(unresolved):
        reach = unresolved["detectable"].dropna()
        span = (
            f"; their n detect about {reach.min():.2f} to {reach.max():.2f} points at 80% power at Holm's level"
            if len(reach) > 1
            else f"; its n detects about {reach.iloc[0]:.2f} points at 80% power at Holm's level"
            if len(reach)
            else ""
        )
        parts.append(f"{', '.join(map(str, unresolved.index))}: not resolvable at this budget{span}.")
    return " ".join(parts)
