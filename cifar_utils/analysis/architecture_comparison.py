"""Notebook 07's design: architectures side by side at equal training time, on one machine.

Each architecture trains with its own recipe at a ladder of epoch counts (every schedule here
decays or stays constant over whatever number of epochs it is given), on the same split, for the
same seeds. Every rung is an ordinary experiment run (experiments.train_runs: records keyed by
configuration digest, reused from a clone), and is tested once after training. Plotted as test
accuracy against measured training seconds, the rungs of all architectures give a Pareto front:
at any time budget, the best accuracy each architecture reached within it.

The recipes are the project's own: the seed recipe for seed_cnn, the fast recipe for the fast
net, and for resnet18 a plain, untuned SGD recipe (the common CIFAR settings: Nesterov momentum
0.9, weight decay 5e-4, label smoothing 0.1, flips and translations, linear warm-up then decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.config import RECIPES, TrainConfig, recipe_config
from ..core.models import smoke_kwargs
from ..errors import ConfigError
from . import stats

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
# name: (named recipe, fields changed in it)
ARCHITECTURES = {"seed_cnn": ("seed", {}), "fast": ("fast", {}), "resnet18": ("seed", RESNET18_RECIPE)}
# Epochs of each rung, sized so that the whole comparison trains in about half an hour on a 2-core CPU: the seed
# recipe's full 10 epochs, the fast recipe at a quarter and half of its 8, resnet18 for one (its full run: hours).
LADDERS = {"seed_cnn": [2, 5, 10], "fast": [2, 4], "resnet18": [1]}
SMOKE_LADDERS = {"seed_cnn": [1], "fast": [1], "resnet18": [1]}


@dataclass(frozen=True)
class Plan:
    """What notebook 07 trains: architectures, their ladders, seeds, and the data each run sees."""

    ladders: dict
    seeds: tuple[int, ...]
    val_size: int = 5000
    train_subset: int | None = None
    smoke: bool = False
    device: str = "auto"
    precision: str = "auto"

    def describe(self) -> str:
        images = (
            f"{self.train_subset:,} training images"
            if self.train_subset
            else f"all {50000 - self.val_size:,} training images"
        )
        rungs = "; ".join(
            f"{a}: {', '.join(map(str, e))} epoch{'s' if e != [1] else ''}" for a, e in self.ladders.items()
        )
        return f"{images}, {len(self.seeds)} seeds each ({', '.join(map(str, self.seeds))}); {rungs}" + (
            " (smoke mode: tiny networks, the numbers only show that the pipeline works)" if self.smoke else ""
        )


def plan(
    smoke: bool = False,
    ladders: dict | None = None,
    seeds: int | None = None,
    train_subset: int | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> Plan:
    """Notebook 07's LADDERS, SEEDS and sizes resolved (None: the full or smoke default) and checked."""
    ladders = dict(ladders if ladders is not None else (SMOKE_LADDERS if smoke else LADDERS))
    unknown = sorted(set(ladders) - set(ARCHITECTURES))
    if unknown or not ladders:
        raise ConfigError(
            f"LADDERS names {', '.join(map(repr, unknown)) or 'no architecture'}; use some of "
            f"{', '.join(ARCHITECTURES)}, each with a list of epoch counts, e.g. {{'fast': [1, 2, 4]}}"
        )
    for name, epochs in ladders.items():
        if (
            isinstance(epochs, (str, bytes))
            or not epochs
            or any(not isinstance(e, int) or isinstance(e, bool) or e < 1 for e in epochs)
        ):
            raise ConfigError(f"LADDERS[{name!r}] must be a list of positive whole numbers of epochs, got {epochs!r}")
        ladders[name] = sorted(set(epochs))
    n = (1 if smoke else 2) if seeds is None else seeds
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"SEEDS must be a positive whole number, got {seeds!r}")
    subset = (1000 if smoke else None) if train_subset is None else (train_subset or None)
    found = Plan(
        ladders,
        tuple(range(1, n + 1)),
        train_subset=subset,
        smoke=bool(smoke),
        device=device or "auto",
        precision=precision or "auto",
    )
    for name in ladders:  # a bad device or precision is refused here, not at the first run
        run_config(found, name, found.ladders[name][0], found.seeds[0])
    return found


def run_config(p: Plan, architecture: str, epochs: int, seed: int):
    """The TrainConfig of one rung: the architecture's recipe at `epochs`, on the plan's split."""
    recipe, changes = ARCHITECTURES[architecture]
    model = {**RECIPES[recipe], **changes}.get("model", TrainConfig.model)
    kwargs = smoke_kwargs(model) if p.smoke else None  # smoke: the tiny size the model's registration names
    return recipe_config(
        recipe,
        **{
            **changes,
            "epochs": epochs,
            "seed": seed,
            "val_size": p.val_size,
            "train_subset": p.train_subset,
            "device": p.device,
            "precision": p.precision,
            "model_kwargs": kwargs,
            **({"batch_size": 100} if p.smoke else {}),
        },
    )


def runs_to_train(p: Plan) -> tuple[list, list[dict]]:
    """(configurations, labels) of every rung of every architecture, every seed."""
    configs, labels = [], []
    for name, ladder in p.ladders.items():
        for epochs in ladder:
            for seed in p.seeds:
                configs.append(run_config(p, name, epochs, seed))
                labels.append({"architecture": name})
    return configs, labels


def rung_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture and rung: seeds, validation accuracy (mean; what the rungs are ranked on), test
    accuracy (mean, SD, 95% t interval; read once per rung, chooses nothing), median training seconds, training
    images per second. `frame` has architecture, epochs, seed, val_accuracy, test_accuracy, train_seconds,
    train_images."""
    rows = []
    for (name, epochs), group in frame.groupby(["architecture", "epochs"], sort=False):
        acc = group["test_accuracy"].astype(float)
        s = stats.summarize(acc) if len(acc) > 1 else None
        seconds = float(group["train_seconds"].median())
        rows.append(
            {
                "architecture": name,
                "epochs": int(epochs),
                "seeds": len(group),
                "val accuracy %": float(100 * group["val_accuracy"].astype(float).mean()),
                "test accuracy %": float(100 * acc.mean()),
                "std": float(100 * s.std) if s else math.nan,
                "95% CI": f"[{100 * s.ci_low:.2f}, {100 * s.ci_high:.2f}]" if s else "n/a (one seed)",
                "median train s": seconds,
                "images/s": float(group["train_images"].iloc[0] * epochs / seconds) if seconds else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    table["Pareto"] = pareto_front(table["median train s"].to_numpy(), table["val accuracy %"].to_numpy())
    return table


def pareto_front(seconds, accuracy) -> np.ndarray:
    """True where no other point is at least as fast and at least as accurate, and strictly better in one."""
    seconds, accuracy = np.asarray(seconds, float), np.asarray(accuracy, float)
    better = (
        (seconds[None, :] <= seconds[:, None])
        & (accuracy[None, :] >= accuracy[:, None])
        & ((seconds[None, :] < seconds[:, None]) | (accuracy[None, :] > accuracy[:, None]))
    )
    return ~better.any(axis=1)


def best_within(table: pd.DataFrame, budgets) -> pd.DataFrame:
    """For each time budget (seconds) and architecture: the rung with the best validation accuracy whose median
    training time fits, shown as 'validation % / test % (epochs)'."""
    rows = []
    for budget in budgets:
        row = {"budget s": budget}
        for name, group in table.groupby("architecture", sort=False):
            fits = group[group["median train s"] <= budget]
            if len(fits):
                chosen = fits.loc[fits["val accuracy %"].idxmax()]
                row[name] = (
                    f"val {chosen['val accuracy %']:.2f}% / test {chosen['test accuracy %']:.2f}% "
                    f"({int(chosen['epochs'])} ep)"
                )
            else:
                row[name] = "no rung fits"
        rows.append(row)
    return pd.DataFrame(rows).set_index("budget s")


def findings(table: pd.DataFrame, budgets, untuned=("resnet18",)) -> list[str]:
    """Sentences from the rung table, at the strength its seeds allow: at each budget the rung with the best mean
    validation accuracy (its test accuracy read once), never called better than another unless seeds resolve it."""
    lines = []
    ranked = table[~table["architecture"].isin(untuned)]
    for budget in budgets:
        fits = ranked[ranked["median train s"] <= budget]
        if fits.empty:
            lines.append(
                f"Within {budget:g} s no ranked rung finished; the fastest took {ranked['median train s'].min():.0f} s."
            )
            continue
        best = fits.loc[fits["val accuracy %"].idxmax()]
        others = fits[fits["architecture"] != best["architecture"]]
        runner = (
            f"; the next architecture, {others.loc[others['val accuracy %'].idxmax(), 'architecture']}, reached "
            f"{others['val accuracy %'].max():.2f}%"
            if len(others)
            else "; no other architecture finished a rung"
        )
        epochs = int(best["epochs"])
        lines.append(
            f"Within {budget:g} s of training, the best mean validation accuracy is {best['architecture']}'s, "
            f"{best['val accuracy %']:.2f}% ({epochs} epoch{'s' if epochs != 1 else ''}, {best['median train s']:.0f} s, "
            f"n={int(best['seeds'])} seeds; test {best['test accuracy %']:.2f}%, 95% interval {best['95% CI']}){runner}."
        )
    if (table["seeds"] < 3).any():
        lines.append(
            f"With {int(table['seeds'].min())} seeds per rung (t intervals on {int(table['seeds'].min()) - 1} degree(s) "
            f"of freedom) and epoch ladders rather than budgets matched by design, these orderings are descriptive, "
            f"not resolved differences."
        )
    for name in (u for u in untuned if u in set(table["architecture"])):
        rows = table[table["architecture"] == name]
        lines.append(
            f"{name} is out of the ranking: it ran {', '.join(str(e) for e in rows['epochs'])} epoch(s) of a plain, "
            f"untuned SGD recipe ({rows['val accuracy %'].max():.2f}% validation), not a recipe worth comparing."
        )
    return lines
