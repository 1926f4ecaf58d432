"""comparisons.compare_arms: rows paired by seed, Holm across the table, reach and equivalence per row."""

import math

import numpy as np
import pandas as pd
import pytest

from cifar_utils.analysis import stats
from cifar_utils.analysis import stats_power as P
from cifar_utils.analysis.comparisons import compare_arms, findings, format_table
from cifar_utils.errors import ConfigError

SEEDS = [1, 2, 3, 4, 5]
FULL = [0.930, 0.936, 0.925, 0.933, 0.931]
ARMS = {
    "full": FULL,
    "no smoothing": [v - 0.010 + e for v, e in zip(FULL, (0.001, -0.001, 0.0, 0.0005, -0.0005))],
    "no tta": [v + e for v, e in zip(FULL, (0.0001, -0.0001, 0.0, 0.0001, -0.0001))],
    "no whitening": [v + e for v, e in zip(FULL, (0.01, -0.012, 0.006, -0.004, 0.003))],
}


def _frame(arms=ARMS, seeds=SEEDS):
    return pd.DataFrame(
        [{"arm": a, "seed": s, "test_accuracy": v} for a, vs in arms.items() for s, v in zip(seeds, vs)]
    )


def test_each_row_is_the_paired_test_and_the_table_is_holm_corrected():
    table = compare_arms(_frame(), "arm", "full", delta=0.005)
    assert list(table.index) == ["no smoothing", "no tta", "no whitening"]
    for arm, row in table.iterrows():
        c = stats.paired_test(ARMS[arm], FULL)
        assert row["n"] == 5
        assert (row["delta"], row["ci_low"], row["ci_high"]) == pytest.approx(
            (100 * c.difference, 100 * c.ci_low, 100 * c.ci_high)
        )
        assert row["p_paired"] == pytest.approx(c.p_value)
        assert row["p_welch"] == pytest.approx(stats.welch_test(ARMS[arm], FULL).p_value)
        sd = pd.Series(ARMS[arm]).sub(FULL).std()
        # reach at Holm's first step (alpha / 3 rows), the level the verdicts use
        assert row["detectable"] == pytest.approx(100 * P.minimal_detectable_effect(sd, 5, alpha=0.05 / 3))
        assert row["detectable"] > 100 * P.minimal_detectable_effect(sd, 5)
    assert list(table["p_holm"]) == pytest.approx(list(stats.holm(table["p_paired"])))
    # the equivalence family is corrected too: Holm over the rows' TOST p-values
    assert list(table["tost_p"]) == pytest.approx(list(stats.holm(table["tost_p_raw"])))


def test_each_row_says_what_it_can():
    table = compare_arms(_frame(), "arm", "full", delta=0.005)
    assert table.loc["no smoothing", "sentence"].startswith("no smoothing lowers test accuracy by 1.00 points")
    assert table.loc["no tta", "equivalent"] and "is equivalent to full within ±0.50" in table.loc["no tta", "sentence"]
    assert not table.loc["no whitening", "equivalent"]
    assert "not resolvable at this budget" in table.loc["no whitening", "sentence"]


def test_only_the_seeds_both_arms_ran_are_paired():
    frame = _frame()
    frame = frame[~((frame["arm"] == "no tta") & (frame["seed"] == 5))]
    assert compare_arms(frame, "arm", "full").loc["no tta", "n"] == 4


def test_differences_that_do_not_vary_cannot_be_judged():
    table = compare_arms(_frame({"full": FULL, "shifted": [v + 0.01 for v in FULL]}), "arm", "full")
    assert math.isnan(table.loc["shifted", "p_paired"]) and math.isnan(table.loc["shifted", "detectable"])
    assert "cannot tell" in table.loc["shifted", "sentence"]


@pytest.mark.parametrize(
    "frame, reference, message",
    [
        (_frame(), "nope", "not among"),
        (pd.concat([_frame(), _frame().head(1)]), "full", "more than one"),
        (_frame({"full": FULL[:1], "x": FULL[:1]}, SEEDS[:1]), "full", "at least two"),
    ],
)
def test_bad_tables_are_refused_with_a_reason(frame, reference, message):
    with pytest.raises(ConfigError, match=message):
        compare_arms(frame, "arm", reference)


def test_the_table_as_read_and_the_paragraph_over_it():
    table = compare_arms(_frame(), "arm", "full", delta=0.005)
    shown = format_table(table)
    row = table.loc["no smoothing"]
    assert (
        shown.loc["no smoothing", "Δ points [95% CI]"]
        == f"{row['delta']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    )
    assert shown.loc["no tta", "equivalent"] == "yes" and shown.loc["no whitening", "equivalent"] == "no"
    assert shown.loc["no smoothing", "p Holm"] == f"{row['p_holm']:.3g}"
    text = findings(table, "full", 0.005)
    assert text.startswith("Of 3 comparisons with full (test accuracy, paired by seed, Holm-corrected at α = 0.05),")
    assert "1 differs from it: no smoothing (-1.00 points)." in text
    assert "no tta is equivalent to it within ±0.50 points (TOST, Holm-corrected over the table)." in text
    reach = table.loc["no whitening", "detectable"]
    assert f"no whitening: not resolvable at this budget; its n detects about {reach:.2f} points" in text


def test_an_equivalence_that_survives_alone_but_not_the_family_correction_is_not_claimed():
    """One TOST p just under 0.05 among several rows: uncorrected it would say "equivalent"; Holm over the
    family multiplies it, so the row is "not resolvable at this budget" instead."""
    rng = np.random.default_rng(0)
    seeds = list(range(1, 7))
    full = 0.85 + rng.normal(0, 0.002, len(seeds))
    arms = {"full": full, "near": full + 0.006 + np.array([-0.004, 0.004, -0.002, 0.002, -0.003, 0.003])}
    for k in range(4):  # rows far from zero that fill the family
        arms[f"far{k}"] = full - 0.05 + rng.normal(0, 0.002, len(seeds))
    frame = pd.DataFrame(
        [{"arm": a, "seed": s, "test_accuracy": v} for a, vs in arms.items() for s, v in zip(seeds, vs)]
    )
    table = compare_arms(frame, "arm", "full", delta=0.01)
    row = table.loc["near"]
    assert row["tost_p_raw"] < 0.05 <= row["tost_p"]
    assert not row["equivalent"] and "equivalent" not in row["sentence"]
