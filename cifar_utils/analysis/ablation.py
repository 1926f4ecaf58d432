"""Notebook 04's design: what each piece of the fast recipe buys, each arm the full recipe with one piece changed.

Every arm runs the same seeds as the full recipe (same initialisation and data order), so each
comparison is a paired test on per-seed differences (comparisons.compare_arms). The value compared
is validation accuracy; the test set is read once, at the end, for the full recipe alone.

How many seeds: a pilot (the full recipe on the first seeds) measures the seed-to-seed SD, and
`plan_seeds` picks the n whose minimal detectable effect (80% power, alpha 0.05, paired t-test)
is at most the target, 1 point by default, capped by a budget; when the cap binds it says so.
The pilot has no paired differences yet, so it plans with their SD taken as sqrt(2) x the single
runs' SD (no correlation between arms assumed: the cautious choice, power.py); the table's own
"detectable" column then gives each row's reach from the differences actually seen.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.config import RECIPES
from ..errors import ConfigError
from ..runs import run_files
from . import stats
from . import stats_power as P
from .experiments import Budget, base_config, reusable_run

FULL = "full recipe"
NO_TTA = "no TTA"
# Muon moves the fast recipe's conv filters; without it, Nesterov SGD moves every parameter, with the settings of
# the older fast10 recipe (airbench94's: lr per 1024 images, bias lr x64, 20% warm-up) and its head (scale 1/9,
# default initialisation), for which Muon's 1/width head does not suit SGD. The fast recipe averages no weights,
# so "Muon" is the one optimizer piece to leave out.
SGD_SETTINGS = {
    k: RECIPES["fast10"][k]
    for k in (
        "optimizer",
        "momentum",
        "nesterov",
        "lr",
        "lr_per_1024",
        "weight_decay",
        "bn_bias_lr_scale",
        "warmup_fraction",
    )
}
# What the SGD arm measures: Nesterov SGD with settings tuned for another recipe (10 epochs, full width, batch
# 1024) against Muon tuned for this one. Its own sweep ("sgd-sweep" below) gives the tuned comparison.
SGD_ARM = "untuned SGD instead of Muon"
ARMS = {  # name: the TrainConfig fields it changes in the full recipe
    "augment none": {"augment": "none"},
    "augment flip": {"augment": "flip"},
    "augment translate": {"augment": "translate"},
    "augment flip+translate": {"augment": "flip+translate"},
    "augment alt_flip": {"augment": "alt_flip"},
    "label smoothing 0": {"label_smoothing": 0.0},
    SGD_ARM: {**SGD_SETTINGS, "model_kwargs": {"head_scale": 1 / 9, "head_init_std": None}},
    "no whitening": {"model_kwargs": {"whiten": False}},  # the first conv trained from a random start, not fitted
    NO_TTA: None,  # trains nothing: the full recipe's own runs, scored without the test-time views
}
SMOKE_ARMS = ("augment none", NO_TTA)


def check_arms(arms) -> list[str]:
    arms = list(arms)
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise ConfigError(
            f"unknown arm{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in ARMS; "
            f"choose from: {', '.join(map(repr, ARMS))}"
            if unknown
            else "ARMS names no arm"
        )
    return list(dict.fromkeys(arms))


def describe_arm(arm: str) -> str:
    """What the arm changes in the full recipe, in words."""
    if arm == FULL:
        return "nothing"
    if ARMS[arm] is None:
        return "nothing trained: the full recipe's runs, evaluated without the test-time views"
    show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    return ", ".join(
        f"{k} {show(v)}" if not isinstance(v, dict) else ", ".join(f"{k2} {show(v2)}" for k2, v2 in v.items())
        for k, v in ARMS[arm].items()
    )


def arm_config(budget: Budget, arm: str, seed: int):
    """The full recipe (arm FULL) or the full recipe with the arm's change, at the budget's size."""
    return base_config(budget, seed, **({} if arm == FULL else ARMS[arm] or {}))


def runs_to_train(budget: Budget, arms, seeds) -> tuple[list, list[dict]]:
    """(configurations, labels) of every run the comparison needs: the full recipe and each arm that trains, every seed."""
    configs, labels = [], []
    for arm in [FULL, *(a for a in check_arms(arms) if ARMS[a] is not None)]:
        for seed in seeds:
            configs.append(arm_config(budget, arm, seed))
            labels.append({"arm": arm})
    return configs, labels


def arm_accuracies(frame: pd.DataFrame, arms) -> pd.DataFrame:
    """arm, seed, val_accuracy: each trained arm's runs, and NO_TTA's from the full recipe's runs without the views."""
    full = frame[frame["arm"] == FULL]
    rows = [frame[frame["arm"].isin([FULL, *arms])][["arm", "seed", "val_accuracy"]]]
    if NO_TTA in arms:
        if full["val_accuracy_no_tta"].isna().any():
            raise ConfigError(
                "the full recipe's runs carry no validation accuracy without test-time augmentation "
                "(trained before it was recorded); train them again with RERUN=True"
            )
        rows.append(
            full[["seed", "val_accuracy_no_tta"]]
            .rename(columns={"val_accuracy_no_tta": "val_accuracy"})
            .assign(arm=NO_TTA)
        )
    return pd.concat(rows, ignore_index=True)[["arm", "seed", "val_accuracy"]]


# ----------------------------------------------------------------------------- how many seeds


SEEDS = {"max_seeds": 20, "pilot_seeds": 3}
SMOKE_SEEDS = {"max_seeds": 3, "pilot_seeds": 2}


def seed_settings(
    smoke: bool = False, n_seeds="auto", max_seeds: int | None = None, pilot_seeds: int | None = None
) -> tuple:
    """(N_SEEDS, MAX_SEEDS, PILOT_SEEDS) resolved (None: the full or smoke default) and checked."""
    defaults = SMOKE_SEEDS if smoke else SEEDS
    max_seeds = defaults["max_seeds"] if max_seeds is None else max_seeds
    pilot_seeds = defaults["pilot_seeds"] if pilot_seeds is None else pilot_seeds
    check_seeds(n_seeds, max_seeds, pilot_seeds)
    return n_seeds, max_seeds, pilot_seeds


def check_seeds(n_seeds, max_seeds, pilot_seeds) -> None:
    """N_SEEDS ('auto' or a whole number >= 2), MAX_SEEDS and PILOT_SEEDS (whole numbers, 2 <= PILOT <= MAX)."""
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not (n_seeds == "auto" or (whole(n_seeds) and n_seeds >= 2)):
        raise ConfigError(
            f"N_SEEDS must be 'auto' or a whole number of at least 2 (a paired test needs two seeds), got {n_seeds!r}"
        )
    if not (whole(pilot_seeds) and whole(max_seeds) and 2 <= pilot_seeds <= max_seeds):
        raise ConfigError(
            f"PILOT_SEEDS and MAX_SEEDS must be whole numbers with 2 <= PILOT_SEEDS <= MAX_SEEDS "
            f"(a spread needs two seeds), got {pilot_seeds!r} and {max_seeds!r}"
        )


@dataclass(frozen=True)
class SeedPlan:
    """The pilot's numbers and the n chosen from them; fractions of accuracy (0.01 = 1 point)."""

    pilot: tuple[float, ...]
    n: int
    needed: int | None  # the seeds the target needs (None: the pilot cannot tell, or 'auto' was not asked)
    capped: bool  # the target needs more than the budget's MAX_SEEDS
    target: float
    auto: bool
    power: float = 0.8
    alpha: float = 0.05

    @property
    def sd(self) -> float:
        return float(np.std(self.pilot, ddof=1))

    @property
    def planning_sd(self) -> float:
        """The SD of a paired difference assumed before any pair exists: sqrt(2) x the single runs' SD."""
        return math.sqrt(2) * self.sd

    @property
    def target_text(self) -> str:
        return f"{100 * self.target:g} point{'' if self.target == 0.01 else 's'}"

    @property
    def detectable(self) -> float:
        """The minimal detectable effect at n (NaN when the pilot's seeds did not vary)."""
        return (
            P.minimal_detectable_effect(self.planning_sd, self.n, self.power, self.alpha) if self.sd > 0 else math.nan
        )

    def sentences(self, what: str = "validation accuracy") -> list[str]:
        k = len(self.pilot)
        lines = [
            f"Pilot: the full recipe on seeds 1 to {k} scored {100 * np.mean(self.pilot):.2f}% mean {what} with "
            f"a seed-to-seed SD of {100 * self.sd:.3f} points; planned with the SD of a paired difference taken "
            f"as √2 × that, {100 * self.planning_sd:.3f} points (no correlation between arms assumed)."
        ]
        test = f"{self.power:.0%} power, α = {self.alpha:g}, paired t-test"
        if self.sd == 0:
            return lines + [
                f"The pilot's seeds did not vary, so they cannot plan n; the comparison runs {self.n} "
                f"seeds and the table's detectable column says what they reach."
            ]
        reach = f"with {self.n} seeds it detects about {100 * self.detectable:.2f} points ({test})"
        if not self.auto:
            return lines + [f"N_SEEDS = {self.n} was given: {reach}."]
        if self.capped:
            needed = f"{self.needed} seeds" if self.needed else "more seeds than can be counted"
            return lines + [
                f"Detecting {self.target_text} would need {needed}, more than MAX_SEEDS = {self.n} "
                f"allows: this budget cannot resolve {self.target_text}; {reach}."
            ]
        return lines + [
            f"A minimal detectable effect of at most {self.target_text} needs {self.needed} seeds; {reach}."
        ]


def plan_seeds(
    pilot, n_seeds="auto", max_seeds: int = 20, target: float = 0.01, power: float = 0.8, alpha: float = 0.05
) -> SeedPlan:
    """The n to run from the pilot's values (fractions): N_SEEDS, or with 'auto' the fewest whose minimal
    detectable effect is <= `target`, never fewer than the pilot ran, at most `max_seeds`."""
    pilot = tuple(float(v) for v in pilot)
    if len(pilot) < 2 or not all(map(math.isfinite, pilot)):
        raise ConfigError(f"the pilot needs at least two finite values to measure a spread, got {pilot}")
    check_seeds(n_seeds, max_seeds, len(pilot))
    if not (isinstance(target, (int, float)) and 0 < target < 1):
        raise ConfigError(
            f"TARGET_EFFECT must be a fraction of accuracy between 0 and 1 (0.01: one point), got {target!r}"
        )
    if n_seeds != "auto":
        return SeedPlan(pilot, n_seeds, None, False, target, auto=False, power=power, alpha=alpha)
    sd = float(np.std(pilot, ddof=1))
    if sd == 0:
        return SeedPlan(pilot, max_seeds, None, False, target, auto=True, power=power, alpha=alpha)
    try:
        needed = P.seeds_needed(math.sqrt(2) * sd, target, power, alpha, paired=True, most=100_000)
    except ValueError:  # more than the search's ceiling: certainly past any cap
        needed = None
    capped = needed is None or needed > max_seeds
    n = max_seeds if capped else max(needed, len(pilot))
    return SeedPlan(pilot, n, needed, capped, target, auto=True, power=power, alpha=alpha)


# ----------------------------------------------------------------------------- the follow-up rounds

# The exploratory round (seeds 1-4, planned from a 3-seed pilot at alpha 0.05) is followed by three rounds whose
# records are committed, so a clone's report reads them without training:
# - "confirm": every arm again on fresh seeds, as many as the pooled SD of the exploratory records needs for a
#   1-point effect at Holm's first step (alpha 0.05 / 9 rows, 80% power, paired-difference SD sqrt(2) x pooled);
#   `confirm_plan` recomputes that n from the records, and the notebook checks it against CONFIRM_SEEDS.
# - "sgd-sweep": the SGD arm's learning rate and weight decay, each x0.5, x1, x2, on seeds of its own; the best
#   on validation then runs on the confirmatory seeds as the arm SGD_TUNED.
# - "long": the arms the exploratory round resolved, at 8 epochs (the shipped recipe's count) at the proxy
#   widths, to see which effects hold as training grows. LONG_ARMS only: a run there costs 4x a proxy run.
# plan_round on the exploratory records asks for 7 seeds (1 point at Holm's level): seeds 5-9 ran first, 10-11
# completed the plan a session later. The notebook states the plan and the n it ran, from the records.
CONFIRM_SEEDS = tuple(range(5, 12))
SWEEP_SEEDS = (12, 13)
SWEEP_FACTORS = (0.5, 1.0, 2.0)
LONG_EPOCHS = 8
LONG_SEEDS = (1, 2, 3)
LONG_ARMS = ("no whitening", "augment flip+translate", "label smoothing 0", NO_TTA)
SGD_TUNED = "SGD tuned by its own sweep instead of Muon"


def sweep_configs(budget: Budget, seeds=SWEEP_SEEDS) -> tuple[list, list[dict]]:
    """The SGD arm at every lr x weight decay factor pair, on the sweep's own seeds: (configs, labels)."""
    base = ARMS[SGD_ARM]
    configs, labels = [], []
    for lr_factor in SWEEP_FACTORS:
        for wd_factor in SWEEP_FACTORS:
            change = {**base, "lr": base["lr"] * lr_factor, "weight_decay": base["weight_decay"] * wd_factor}
            for seed in seeds:
                configs.append(base_config(budget, seed, **change))
                labels.append({"arm": "SGD sweep", "lr_factor": lr_factor, "wd_factor": wd_factor})
    return configs, labels


def tuned_sgd_change(sweep: pd.DataFrame) -> dict:
    """The SGD arm's change with the sweep's best lr and weight decay factors (mean validation accuracy)."""
    means = sweep.groupby(["lr_factor", "wd_factor"])["val_accuracy"].mean()
    lr_factor, wd_factor = (float(f) for f in means.idxmax())  # numpy scalars would make checkpoints unloadable
    base = ARMS[SGD_ARM]
    return {**base, "lr": base["lr"] * lr_factor, "weight_decay": base["weight_decay"] * wd_factor}


def long_budget(budget: Budget) -> Budget:
    """The proxy budget lengthened to LONG_EPOCHS: the longer round's size."""
    return dataclasses.replace(budget, epochs=LONG_EPOCHS)


def sweep_sentence(sweep: pd.DataFrame) -> str:
    """Which lr and weight-decay factors the SGD sweep chose on validation, and whether they sit at the grid's edge
    (where a wider grid might find more)."""
    means = sweep.groupby(["lr_factor", "wd_factor"])["val_accuracy"].mean()
    (lr_factor, wd_factor), best = means.idxmax(), means.max()
    edges = [
        name
        for name, factor in (("learning rate", lr_factor), ("weight decay", wd_factor))
        if factor in (min(SWEEP_FACTORS), max(SWEEP_FACTORS))
    ]
    seeds = sweep["seed"].nunique() if "seed" in sweep else len(SWEEP_SEEDS)
    return (
        f"The SGD sweep chose lr x{lr_factor:g} and weight decay x{wd_factor:g} ({100 * best:.2f}% mean validation "
        f"accuracy over {seeds} seeds of its own)"
        + (
            f"; its {' and '.join(edges)} sit{'s' if len(edges) == 1 else ''} at the grid's edge, so a wider grid "
            f"might tune SGD further"
            if edges
            else ""
        )
        + "."
    )


def round_configs(name: str, budget: Budget, sweep: pd.DataFrame | None = None) -> tuple[list, list[dict]]:
    """(configs, labels) of a follow-up round: "confirm", "sgd-sweep", "sgd-tuned" (needs the sweep's rows) or
    "long" (`budget` is then the proxy budget; the round lengthens it to LONG_EPOCHS)."""
    if name == "confirm":
        return runs_to_train(budget, list(ARMS), CONFIRM_SEEDS)
    if name == "sgd-sweep":
        return sweep_configs(budget)
    if name == "sgd-tuned":
        if sweep is None:
            raise ConfigError("the tuned SGD arm needs the sweep's rows: run the round 'sgd-sweep' first")
        change = tuned_sgd_change(sweep)
        return [base_config(budget, s, **change) for s in CONFIRM_SEEDS], [{"arm": SGD_TUNED}] * len(CONFIRM_SEEDS)
    if name == "long":
        return runs_to_train(long_budget(budget), LONG_ARMS, LONG_SEEDS)
    raise ConfigError(f"unknown round {name!r}; choose one of: confirm, sgd-sweep, sgd-tuned, long")


def pooled_seed_sd(frame: pd.DataFrame, by: str = "arm", value: str = "val_accuracy") -> tuple[float, int]:
    """(pooled SD, degrees of freedom) of `value` over runs that differ only by seed: each arm's spread around
    its own mean, pooled. What plans a new round better than a 3-seed pilot."""
    sd, df = stats.pooled_sd(g[value].dropna().tolist() for _, g in frame.groupby(by))
    if df == 0:
        raise ConfigError("a pooled SD needs at least one arm with two seeds")
    return sd, df


@dataclass(frozen=True)
class RoundPlan:
    """How many fresh seeds a confirmatory round needs, planned at the level its verdicts use (Holm)."""

    sd: float  # pooled SD of single runs (fraction)
    df: int
    rows: int  # comparisons in the table: Holm's first step tests at alpha / rows
    needed: int  # seeds for `target` at 80% power at that level (paired-difference SD sqrt(2) x sd)
    seeds: tuple[int, ...]  # the seeds the round runs
    target: float = 0.01
    alpha: float = 0.05

    @property
    def level(self) -> float:
        return self.alpha / self.rows

    @property
    def detectable(self) -> float:
        return P.minimal_detectable_effect(math.sqrt(2) * self.sd, len(self.seeds), 0.8, self.level)

    def sentence(self) -> str:
        enough = "enough" if len(self.seeds) >= self.needed else f"fewer than the {self.needed} needed"
        return (
            f"Planned from the exploratory records: pooled seed-to-seed SD {100 * self.sd:.2f} points on {self.df} "
            f"degrees of freedom; at Holm's first step (α = {self.alpha:g} / {self.rows} = {self.level:.4f}), 80% power "
            f"for a {100 * self.target:g}-point difference needs {self.needed} paired seeds. The round runs "
            f"{len(self.seeds)} fresh seeds ({enough}), which detect about {100 * self.detectable:.2f} points at that level."
        )


def plan_round(exploratory: pd.DataFrame, rows: int, seeds=CONFIRM_SEEDS, target: float = 0.01) -> RoundPlan:
    """The confirmatory round's plan from the exploratory round's runs (one row per run, column arm)."""
    sd, df = pooled_seed_sd(exploratory[exploratory["arm"].isin(list(ARMS) + [FULL])])
    needed = P.seeds_needed(math.sqrt(2) * sd, target, 0.8, 0.05 / rows, paired=True, most=1000)
    return RoundPlan(sd, df, rows, needed, tuple(seeds), target)


def verdict_word(row) -> str:
    """A comparison row in one word: what the table resolved, at Holm's level."""
    if row["p_holm"] < 0.05:
        return f"{'raises' if row['delta'] > 0 else 'lowers'} ({row['delta']:+.2f})"
    if row["equivalent"]:
        return f"equivalent ({row['delta']:+.2f})"
    return f"not resolvable ({row['delta']:+.2f})"


def missing_records(configs, store) -> list:
    """The configurations of a round whose finished records are not in `store` (nor in the committed store):
    a notebook analyses a round only when none is missing, so the report never trains one."""
    return [c for c in configs if not (reusable_run(store, c)[0] / run_files.METRICS).is_file()]


def across_budgets(short: pd.DataFrame, long: pd.DataFrame, short_name: str, long_name: str) -> pd.DataFrame:
    """Each arm of the long round beside the same arm at the proxy budget: its difference from the full recipe
    (points, 95% CI over paired seeds) and what the Holm-corrected table resolved, in one cell per budget."""

    def cell(row) -> str:
        interval = f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]" if not math.isnan(row["ci_low"]) else "[n/a]"
        return f"{row['delta']:+.2f} {interval}, n={int(row['n'])}: {verdict_word(row).split(' (')[0]}"

    return pd.DataFrame(
        {
            short_name: [cell(short.loc[a]) if a in short.index else "not in that round" for a in long.index],
            long_name: [cell(long.loc[a]) for a in long.index],
        },
        index=pd.Index(long.index, name="arm"),
    )


def held_as_training_grows(short: pd.DataFrame, long: pd.DataFrame) -> str:
    """One sentence: which arms keep their resolved verdict at the longer budget, which lose or gain one."""
    kept, lost, gained, open_ = [], [], [], []
    for arm in long.index:
        before = verdict_word(short.loc[arm]).split(" (")[0] if arm in short.index else None
        after = verdict_word(long.loc[arm]).split(" (")[0]
        resolved_before = before in ("raises", "lowers")
        resolved_after = after in ("raises", "lowers")
        if resolved_before and after == before:
            kept.append(f"{arm} ({long.loc[arm, 'delta']:+.2f})")
        elif resolved_before:
            lost.append(f"{arm} ({before} at the proxy, {after} here)")
        elif resolved_after:
            gained.append(f"{arm} ({after} {long.loc[arm, 'delta']:+.2f})")
        else:
            open_.append(arm)
    parts = [
        f"resolved at both budgets, the same way: {', '.join(kept)}" if kept else "",
        f"resolved at the proxy but not at the longer budget: {', '.join(lost)}" if lost else "",
        f"resolved only at the longer budget: {', '.join(gained)}" if gained else "",
        f"resolved at neither: {', '.join(open_)}" if open_ else "",
    ]
    said = "; ".join(p for p in parts if p)
    return said[:1].upper() + said[1:] + "."
