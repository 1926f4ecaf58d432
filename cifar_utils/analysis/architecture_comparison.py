"""Notebook 07's design: architectures side by side at matched training-time budgets, on one machine.

For each budget, each architecture trains with its own recipe for the whole number of epochs that ends within the
budget on the machine the records were made on (bench/size_budgets.py measured an epoch's cost there). Every
schedule here decays over whatever number of epochs it is given, so each run finishes its schedule inside its budget.
Every run is an ordinary experiment run (experiments.train_runs: records keyed by configuration digest, reused from a
clone), scored on validation. Within each budget the architectures are ranked on validation accuracy, the leader is
tested against the runner-up (Welch, Holm over the budgets), and the test set is read once, for the leader only.

The seeds are this design's own (21, 22, 23), so no run is borrowed from another notebook trained on another machine:
a time budget means something only on the machine that measured it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.config import recipe_config
from ..core.models import smoke_kwargs
from ..errors import ConfigError
from ..runs import run_files
from ..runs.reuse import decide_experiment_run
from . import experiments, stats
from . import stats_power as P

# The architectures in the table and what each is. The two fast nets train in batches of 500, as notebook 04's
# proxy does: the recipe's 2000 leaves a one-epoch schedule 22 steps.
ARCHITECTURES = {
    "seed_cnn": "the seed project's CNN with its recipe (Adam at 1e-3, batches of 128, no augmentation)",
    "fast_narrow": "the fast net at widths 32/64/64 with the fast recipe in batches of 500 (notebook 04's proxy)",
    "fast": "the fast net at its full widths 64/256/256 with the fast recipe in batches of 500",
}
NARROW_WIDTHS = (32, 64, 64)
FAST_BATCH = 500
SMOKE_WIDTHS = {"fast_narrow": (8, 16, 16), "fast": (16, 32, 32)}

# ResNet-18 with the common CIFAR settings (Nesterov SGD 0.1, momentum 0.9, decay 5e-4, smoothing 0.1, flips and
# translations, warm-up then decay). Kept out of the table: notebook 07's earlier records show one epoch of it taking
# longer than the largest budget here, so no schedule of whole epochs ends within any budget. `excluded_note` says
# so from the records.
RESNET18_RECIPE = {
    "model": "resnet18",
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "batch_size": 256,
    "label_smoothing": 0.1,
    "augment": "flip+translate",
    "schedule": "onecycle",
    "warmup_fraction": 0.15,
}
EXCLUDED = {"resnet18": {"epochs": 1, "seeds": (1, 2)}}  # the records that give its reason

# Seconds of training -> epochs of each architecture that end within them, sized by bench/size_budgets.py on an
# AMD EPYC Zen 5 (AVX-512 BF16, bf16, 2 threads; bench/RESULTS.md): start-up + epochs x epoch cost <= 85% of the
# budget, with an epoch (training and its validation pass) measured at 12.1 s for seed_cnn, 16.9 s for fast_narrow
# and 70.9 s for fast. The first real seed_cnn runs took 13.3 s an epoch, so its 300-s size was cut from 21 epochs
# to 19 before those ran; its 2- and 4-epoch runs had measured within 30 and 60 s. An architecture missing from a
# budget cannot finish one epoch within it.
BUDGETS = {
    30.0: {"seed_cnn": 2, "fast_narrow": 1},
    60.0: {"seed_cnn": 4, "fast_narrow": 2},
    120.0: {"seed_cnn": 8, "fast_narrow": 6, "fast": 1},
    300.0: {"seed_cnn": 19, "fast_narrow": 15, "fast": 3},
}
SIZED_ON = "an AMD EPYC Zen 5 (AVX-512 BF16, bf16, 2 threads)"
SMOKE_BUDGETS = {60.0: {"seed_cnn": 1, "fast_narrow": 1, "fast": 1}}
FIRST_SEED = 21
SEEDS = 3


@dataclass(frozen=True)
class Plan:
    """What notebook 07 trains: the budgets with each architecture's epochs, the seeds, the data each run sees."""

    budgets: dict  # seconds -> {architecture: epochs}
    seeds: tuple[int, ...]
    val_size: int = 5000
    train_subset: int | None = None
    smoke: bool = False
    device: str = "auto"
    precision: str = "auto"

    def rungs(self) -> list[tuple[str, int]]:
        """Every (architecture, epochs) the budgets need, once each, in the budgets' order."""
        seen = []
        for sizes in self.budgets.values():
            seen += [(a, e) for a, e in sizes.items() if (a, e) not in seen]
        return seen

    def describe(self) -> str:
        images = (
            f"{self.train_subset:,} training images"
            if self.train_subset
            else f"all {50000 - self.val_size:,} training images"
        )
        sized = "; ".join(
            f"{s:g} s: " + ", ".join(f"{a} {e} epoch{'s' if e != 1 else ''}" for a, e in sizes.items())
            for s, sizes in self.budgets.items()
        )
        scored = min(self.val_size, max(1, self.train_subset // 5)) if self.train_subset else self.val_size
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}"
        return (
            f"{images}, {seeds} per configuration ({', '.join(map(str, self.seeds))}), scored on "
            f"{scored:,} validation images; budgets {sized}"
            + (" (smoke mode: tiny networks, the numbers only show that the pipeline works)" if self.smoke else "")
        )


def _whole(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def plan(
    smoke: bool = False,
    budgets: dict | None = None,
    seeds: int | None = None,
    train_subset: int | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> Plan:
    """Notebook 07's BUDGETS, SEEDS and sizes resolved (None: the full or smoke default) and checked."""
    budgets = budgets if budgets is not None else (SMOKE_BUDGETS if smoke else BUDGETS)
    example = "e.g. {60: {'seed_cnn': 3, 'fast_narrow': 3}}"
    if not isinstance(budgets, dict) or not budgets:
        raise ConfigError(f"BUDGETS must map seconds to each architecture's epochs, {example}; got {budgets!r}")
    resolved = {}
    for key, sizes in budgets.items():
        try:  # papermill's YAML and JSON give keys as text
            seconds = float(key) if not isinstance(key, bool) else math.nan
        except (TypeError, ValueError):
            seconds = math.nan
        if not seconds > 0 or math.isinf(seconds):
            raise ConfigError(f"BUDGETS' keys are seconds of training, positive numbers; got {key!r}")
        unknown = sorted(set(sizes) - set(ARCHITECTURES)) if isinstance(sizes, dict) else None
        if unknown is None or unknown or not sizes:
            raise ConfigError(
                f"BUDGETS[{key!r}] names {', '.join(map(repr, unknown or [])) or 'no architecture'}; use some of "
                f"{', '.join(ARCHITECTURES)}, each with its epochs, {example}"
            )
        for name, epochs in sizes.items():
            if not _whole(epochs, 1):
                raise ConfigError(f"BUDGETS[{key!r}][{name!r}] must be a positive whole number of epochs")
        resolved[seconds] = dict(sizes)
    n = (1 if smoke else SEEDS) if seeds is None else seeds
    if not _whole(n, 1):
        raise ConfigError(f"SEEDS must be a positive whole number, got {seeds!r}")
    subset = (1000 if smoke else None) if train_subset is None else (train_subset or None)
    first = 1 if smoke else FIRST_SEED
    found = Plan(
        dict(sorted(resolved.items())),
        tuple(range(first, first + n)),
        train_subset=subset,
        smoke=bool(smoke),
        device=device or "auto",
        precision=precision or "auto",
    )
    for name, epochs in found.rungs():  # a bad device or precision is refused here, not at the first run
        run_config(found, name, epochs, found.seeds[0])
    return found


def run_config(p: Plan, architecture: str, epochs: int, seed: int):
    """The TrainConfig of one architecture at `epochs`, on the plan's split (resnet18: its excluded recipe)."""
    common = {
        "epochs": epochs,
        "seed": seed,
        "val_size": p.val_size,
        "train_subset": p.train_subset,
        "device": p.device,
        "precision": p.precision,
    }
    if architecture == "seed_cnn":
        return recipe_config("seed", **common, model_kwargs=smoke_kwargs("seed_cnn") if p.smoke else None)
    if architecture == "resnet18":
        return recipe_config(
            "seed",
            **{**RESNET18_RECIPE, **common, **({"batch_size": 100} if p.smoke else {})},
            model_kwargs=smoke_kwargs("resnet18") if p.smoke else None,
        )
    if architecture in ("fast_narrow", "fast"):
        widths = SMOKE_WIDTHS[architecture] if p.smoke else (NARROW_WIDTHS if architecture == "fast_narrow" else None)
        size = experiments.Budget(
            p.smoke,
            epochs,
            widths,
            p.train_subset,
            p.val_size,
            p.device,
            p.precision,
            100 if p.smoke else FAST_BATCH,
        )
        return experiments.base_config(size, seed)
    raise ConfigError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def runs_to_train(p: Plan) -> tuple[list, list[dict]]:
    """(configurations, labels) of every configuration the budgets need, every seed, each once."""
    configs, labels = [], []
    for name, epochs in p.rungs():
        for seed in p.seeds:
            configs.append(run_config(p, name, epochs, seed))
            labels.append({"architecture": name})
    return configs, labels


def _interval(values) -> tuple[float, float, str]:
    """(mean %, SD %, '[low, high]' 95% t interval %) of accuracies given as fractions."""
    values = [float(v) for v in values]
    if len(values) < 2:
        return 100 * float(np.mean(values)), math.nan, "one seed: no interval"
    s = stats.summarize(values)
    return 100 * s.mean, 100 * s.std, f"[{100 * s.ci_low:.2f}, {100 * s.ci_high:.2f}]"


def budget_table(frame: pd.DataFrame, p: Plan) -> pd.DataFrame:
    """One row per budget and architecture: its epochs, seeds, validation accuracy (mean, SD, 95% t interval; what
    ranks), median and longest measured training seconds, whether the longest fits the budget, the rank within the
    budget (1 = leader, among the configurations that fit) and the machine that trained it. `frame` has architecture,
    epochs, seed, val_accuracy, train_seconds and trained_on, one row per run."""
    rows = []
    for seconds, sizes in p.budgets.items():
        for name, epochs in sizes.items():
            runs = frame[(frame["architecture"] == name) & (frame["epochs"] == epochs)]
            if runs.empty:
                continue
            mean, sd, ci = _interval(runs["val_accuracy"])
            took = runs["train_seconds"].astype(float)
            rows.append(
                {
                    "budget s": seconds,
                    "architecture": name,
                    "epochs": int(epochs),
                    "seeds": len(runs),
                    "val accuracy %": mean,
                    "SD": sd,
                    "95% CI": ci,
                    "median train s": float(took.median()),
                    "longest train s": float(took.max()),
                    "fits": bool(took.max() <= seconds),
                    "trained on": ", ".join(sorted({str(t) for t in runs.get("trained_on", pd.Series()).dropna()})),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    ranked = table[table["fits"]].groupby("budget s")["val accuracy %"].rank(ascending=False, method="min")
    table["rank"] = ranked.reindex(table.index).astype("Int64")
    return table


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The budget table for a reader: numbers rounded to text, no NaN (one seed has no SD; an unranked row a dash)."""
    return pd.DataFrame(
        {
            "budget s": table["budget s"].map(lambda v: f"{v:g}"),
            "architecture": table["architecture"],
            "epochs": table["epochs"],
            "seeds": table["seeds"],
            "val accuracy % (mean)": table["val accuracy %"].map(lambda v: f"{v:.2f}"),
            "SD (seeds)": table["SD"].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}"),
            "95% CI": table["95% CI"],
            "median train s": table["median train s"].map(lambda v: f"{v:.0f}"),
            "longest train s": table["longest train s"].map(lambda v: f"{v:.0f}"),
            "rank": table["rank"].map(lambda v: "over budget" if pd.isna(v) else str(int(v))),
        }
    )


def leaders(table: pd.DataFrame) -> pd.DataFrame:
    """The leading row of each budget (rank 1 on validation among the configurations that fit)."""
    return table[table["rank"] == 1].drop_duplicates("budget s")


def chosen_configs(table: pd.DataFrame, p: Plan) -> list:
    """The configurations whose test accuracy is read: each budget's leader, every seed, each configuration once."""
    configs = []
    for _, row in leaders(table).iterrows():
        for seed in p.seeds:
            config = run_config(p, row["architecture"], int(row["epochs"]), seed)
            if config not in configs:
                configs.append(config)
    return configs


def pareto_front(seconds, accuracy) -> np.ndarray:
    """True where no other point is at least as fast and at least as accurate, and strictly better in one."""
    seconds, accuracy = np.asarray(seconds, float), np.asarray(accuracy, float)
    better = (
        (seconds[None, :] <= seconds[:, None])
        & (accuracy[None, :] >= accuracy[:, None])
        & ((seconds[None, :] < seconds[:, None]) | (accuracy[None, :] > accuracy[:, None]))
    )
    return ~better.any(axis=1)


def rung_table(table: pd.DataFrame) -> pd.DataFrame:
    """The budget table's configurations once each (a configuration can serve two budgets), with the Pareto front
    on validation accuracy against median training seconds, for the figure."""
    rungs = table.drop_duplicates(["architecture", "epochs"]).reset_index(drop=True)
    rungs = rungs.rename(columns={"SD": "std"})
    rungs["Pareto"] = pareto_front(rungs["median train s"].to_numpy(), rungs["val accuracy %"].to_numpy())
    return rungs


def excluded_note(frame: pd.DataFrame, p: Plan) -> list[str]:
    """Why each architecture outside the table is out of it, from its records (`frame`: their runs, maybe none)."""
    lines = []
    largest = max(p.budgets)
    for name, settings in EXCLUDED.items():
        runs = frame[frame["architecture"] == name]
        if len(runs):
            took = runs["train_seconds"].astype(float)
            where = ", ".join(sorted({str(t) for t in runs["trained_on"].dropna()})) or "the machine of record"
            lines.append(
                f"{name} is not in the table: one epoch of its common CIFAR recipe took {took.median():.0f} s of "
                f"training (median of {len(runs)} runs on {where}), more than the largest budget ({largest:g} s), "
                f"so no schedule of whole epochs ends within any budget here; its "
                f"{100 * runs['val_accuracy'].astype(float).mean():.2f}% validation after that one epoch is not a "
                f"result worth ranking."
            )
        else:
            lines.append(
                f"{name} is not in the table: no record of its {settings['epochs']}-epoch run is here to measure its "
                f"cost; on a 2-core CPU one epoch takes longer than the largest budget ({largest:g} s)."
            )
    return lines


def excluded_runs(store, p: Plan) -> pd.DataFrame:
    """The finished runs that give the excluded architectures' reasons, read from their records (never trained here):
    architecture, train_seconds, val_accuracy, trained_on; no row where a record is missing."""
    rows = []
    for name, settings in EXCLUDED.items():
        for seed in settings["seeds"]:
            decision = decide_experiment_run(store, run_config(p, name, settings["epochs"], seed))
            if not decision.reuse:
                continue
            metrics = run_files.read_json(decision.folder / run_files.METRICS)
            prov = metrics.get("provenance") or {}
            rows.append(
                {
                    "architecture": name,
                    "train_seconds": metrics.get("train_seconds", metrics["seconds"]),
                    "val_accuracy": metrics["val_accuracy"],
                    "trained_on": prov.get("cpu") or prov.get("device_name"),
                }
            )
    return pd.DataFrame(rows, columns=["architecture", "train_seconds", "val_accuracy", "trained_on"])


@dataclass(frozen=True)
class LeaderTest:
    """A budget's leader against its runner-up on validation accuracy: Welch's test, Holm over the budgets."""

    leader: str
    runner_up: str
    n: int  # the smaller group's seeds
    delta: float  # points
    ci_low: float | None
    ci_high: float | None
    p_holm: float | None  # None: no spread to test against (one seed, or no variation)
    verdict: str  # "differs", "not resolvable" or "not tested"
    detectable: float | None = None  # points a test of these seeds finds with 80% power at Holm's first step


def leader_tests(table: pd.DataFrame, frame: pd.DataFrame, alpha: float = 0.05) -> dict:
    """budget -> LeaderTest for every budget where a second architecture fits; one family, Holm-corrected."""
    found, raw = {}, {}
    for seconds, rows in table.groupby("budget s", sort=True):
        ranked = rows[rows["fits"]].sort_values("rank")
        if len(ranked) < 2:
            continue
        lead, runner = ranked.iloc[0], ranked.iloc[1]

        def accuracies(row):
            runs = frame[(frame["architecture"] == row["architecture"]) & (frame["epochs"] == row["epochs"])]
            return runs["val_accuracy"].astype(float).tolist()

        a, b = accuracies(lead), accuracies(runner)
        found[seconds] = (lead["architecture"], runner["architecture"], min(len(a), len(b)))
        if len(a) > 1 and len(b) > 1:
            c = stats.welch_test(a, b)
            raw[seconds] = c if not math.isnan(c.p_value) else None
        else:
            raw[seconds] = None
        sd = stats.pooled_sd([a, b])[0] if len(a) > 1 and len(b) > 1 else 0.0
        found[seconds] += (100 * (np.mean(a) - np.mean(b)), sd)
    testable = [s for s, c in raw.items() if c is not None]
    adjusted = dict(zip(testable, stats.holm([raw[s].p_value for s in testable]))) if testable else {}
    level = alpha / max(1, len(testable))  # Holm's first step: the strictest level a test of the family meets
    tests = {}
    for seconds, (lead, runner, n, delta, sd) in found.items():
        c, p = raw[seconds], adjusted.get(seconds)
        reach = 100 * P.minimal_detectable_effect(sd, n, 0.8, level, paired=False) if sd > 0 and n > 1 else None
        tests[seconds] = LeaderTest(
            lead,
            runner,
            n,
            float(delta),
            None if c is None else float(100 * c.ci_low),
            None if c is None else float(100 * c.ci_high),
            None if p is None else float(p),
            "not tested" if p is None else ("differs" if p < alpha else "not resolvable"),
            reach,
        )
    return tests


def findings(table: pd.DataFrame, comparisons: dict, tests: pd.DataFrame, sized_on: str = SIZED_ON) -> list[str]:
    """Sentences from the budget table: within each budget the leader on validation (n, interval), against the
    runner-up at Holm's level over the budgets, and the leader's test accuracy read once. `comparisons`: budget ->
    headline_records.Effect of leader against runner-up; `tests`: architecture, epochs, test_accuracy per run."""
    lines = []
    for seconds, rows in table.groupby("budget s", sort=True):
        fit = rows[rows["fits"]]
        over = rows[~rows["fits"]]
        if fit.empty:
            lines.append(f"Within {seconds:g} s no configuration finished on every seed.")
            continue
        lead = fit.sort_values("rank").iloc[0]
        mine = tests[(tests["architecture"] == lead["architecture"]) & (tests["epochs"] == lead["epochs"])]
        test_mean, _, test_ci = _interval(mine["test_accuracy"]) if len(mine) else (math.nan, math.nan, "")
        said = (
            f"Within {seconds:g} s of training, {lead['architecture']} ({int(lead['epochs'])} epoch"
            f"{'s' if lead['epochs'] != 1 else ''}, median {lead['median train s']:.0f} s) leads on validation with "
            f"{lead['val accuracy %']:.2f}% ("
            + (
                f"n={int(lead['seeds'])} seeds, 95% CI {lead['95% CI']})"
                if lead["seeds"] > 1
                else "one seed, no interval)"
            )
        )
        effect = comparisons.get(seconds)
        if effect is None:
            said += "; no other architecture finished an epoch within it"
        else:
            runner = fit.sort_values("rank").iloc[1]
            versus = f"{runner['architecture']}'s {runner['val accuracy %']:.2f}%"
            if effect.verdict == "differs":
                said += (
                    f", above {versus} by {effect.delta:.2f} points (95% Welch CI [{effect.ci_low:.2f}, "
                    f"{effect.ci_high:.2f}], Holm p = {effect.p_holm:.2g}, n={effect.n} seeds each)"
                )
            elif effect.verdict == "not tested":
                said += f", beside {versus}; with one seed the difference is not tested"
            else:
                said += f"; against {versus} the difference is not resolvable at this budget"
                if effect.p_holm is not None:
                    said += f" (Holm p = {effect.p_holm:.2g}"
                    said += f"; its seeds detect about {effect.detectable:.1f} points)" if effect.detectable else ")"
        if len(mine):
            said += f". Its test accuracy, read once: {test_mean:.2f}%" + (
                f" (95% CI {test_ci})" if len(mine) > 1 else ""
            )
        if len(over):
            said += ". Over the budget on some seed, so unranked: " + ", ".join(
                f"{r['architecture']} ({r['longest train s']:.0f} s)" for _, r in over.iterrows()
            )
        lines.append(said + ".")
    machines = sorted({m for t in table["trained on"] for m in t.split(", ") if m})
    lines.append(
        f"The budgets were sized on {sized_on}: each architecture ran the whole epochs that end within the budget "
        f"there, its schedule finishing inside it; these runs were trained on {', '.join(machines) or 'an unrecorded machine'}. "
        f"On another machine the times differ and the ranking can change."
    )
    return lines
