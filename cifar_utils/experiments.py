"""Experiments over many runs: the augmentation ablation (notebook 04) and the hyperparameter search (05).

Every configuration is trained as an ordinary run folder, named by a digest of its configuration,
so a rerun of a notebook or of the report reuses each finished run instead of training it again,
and an interrupted experiment keeps every run it finished. Two stores keep the roles apart:

- `experiments/`: runs evaluated on the test set after training (the ablation's seeds, the
  search's re-trained best configuration and its baseline). Identical configurations are shared,
  so the search's baseline, the seed recipe, is the ablation's "none" row when both use the same seeds.
- `search-trials/`: the search's trials, never evaluated on the test set: they are scored on the
  validation split only, so no number that chooses a configuration can come from the test set.

Compute decides the defaults. On a 2-core CPU the seed recipe's full 10 epochs on 45,000 images
take about 9 minutes, so the experiments train on a seeded, class-mixed subset of 10,000 of the
training images (with 2,000 validation images) for 10 epochs: about 3 to 4 minutes a run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import stats
from .config import recipe_config
from .errors import ConfigError, NonFiniteLoss
from .inference import resolve_device, with_precision
from .tables import markdown_table
from .training import fit_or_reuse

ABLATION_AUGMENTS = ("none", "flip", "translate", "flip+translate", "alt_flip+translate2")
EVALUATED_STORE = "experiments"
TRIALS_STORE = "search-trials"
SEARCH_TRIAL_SEED = 0  # trials train with seed 0; the re-trained best and its baseline use SEEDS (1, 2, ...)

# The seed recipe's knobs searched in notebook 05. Learning rates depend on the optimizer: Adam
# and SGD work on scales a decade or two apart. Epochs are given relative to the experiments'.
SEARCH_SPACE = {
    "optimizer": ("adam", "sgd"),
    "lr": {"adam": (3e-4, 1e-3, 3e-3), "sgd": (0.01, 0.03, 0.1)},
    "weight_decay": (0.0, 5e-4, 5e-3),
    "batch_size": (64, 128, 256),
    "label_smoothing": (0.0, 0.1),
    "epochs": (0.5, 1.0),  # multiples of the experiments' epoch count
}
KNOBS = ("optimizer", "lr", "weight_decay", "batch_size", "label_smoothing", "epochs")
SGD_SETTINGS = {"momentum": 0.9, "nesterov": True}


@dataclass(frozen=True)
class Settings:
    """How big an experiment is: seeds per configuration, trials, epochs and training images."""

    smoke: bool
    seeds: tuple[int, ...]
    epochs: int
    train_subset: int | None
    trials: int
    augment: str = "none"  # the search's augmentation: the seed recipe's (none), so trial 1 is the recipe itself

    def describe(self) -> str:
        images = f"{self.train_subset:,}" if self.train_subset else "all 45,000"
        return (f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}), {self.epochs} "
                f"epoch{'s' if self.epochs != 1 else ''} on {images} "
                f"training images" + (" (smoke mode: the numbers only show that the pipeline works)" if self.smoke else ""))


FULL = {"seeds": 5, "epochs": 10, "train_subset": 10000, "trials": 10}
SMOKE = {"seeds": 2, "epochs": 1, "train_subset": 1000, "trials": 3}


def experiment_settings(smoke: bool = False, seeds: int | None = None, epochs: int | None = None,
                        train_subset: int | None = None, trials: int | None = None,
                        augment: str | None = None) -> Settings:
    """The notebooks' parameters resolved: None takes the full (or smoke) default; 0 for train_subset means all."""
    defaults = SMOKE if smoke else FULL
    seeds = defaults["seeds"] if seeds is None else seeds
    epochs = defaults["epochs"] if epochs is None else epochs
    trials = defaults["trials"] if trials is None else trials
    subset = defaults["train_subset"] if train_subset is None else (train_subset or None)
    for name, value, least in (("SEEDS", seeds, 2), ("EXPERIMENT_EPOCHS", epochs, 1), ("TRIALS", trials, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            why = " (a spread needs at least two seeds)" if name == "SEEDS" else ""
            raise ConfigError(f"{name} must be a whole number of at least {least}{why}, got {value!r}")
    if subset is not None and (not isinstance(subset, int) or subset < 10):
        raise ConfigError(f"EXPERIMENT_SUBSET must be a whole number of at least 10 training images (or 0 for all), "
                          f"got {train_subset!r}")
    settings = Settings(bool(smoke), tuple(range(1, seeds + 1)), epochs, subset, trials)
    if augment:
        settings = dataclasses.replace(settings, augment=augment)
        base_config(settings, augment=augment)  # an unknown augmentation is refused here, not at the first run
    return settings


def base_config(settings: Settings, **overrides):
    """The seed recipe at the experiments' size; `overrides` are TrainConfig fields."""
    values = {"epochs": settings.epochs, "train_subset": settings.train_subset, **overrides}
    if values.get("optimizer") == "sgd":
        values = {**SGD_SETTINGS, **values}
    return recipe_config("seed", **values)


# ----------------------------------------------------------------------------- runs


def config_digest(config) -> str:
    """A short digest of everything in the configuration, with precision "auto" as it resolves on this
    machine: equal configurations, equal digests, and runs at different precisions never share a folder."""
    text = json.dumps(with_precision(config, resolve_device(config.device)).to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def run_folder(store: str | Path, config) -> Path:
    """<store>/<model>-<augment>-seed<seed>-<digest>: readable, and unique to the configuration."""
    return Path(store) / f"{config.model}-{config.augment}-seed{config.seed}-{config_digest(config)}"


def train_runs(configs, store: str | Path, dataset, *, evaluate_test: bool, reuse: bool = True,
               progress: bool = False, log=print):
    """Train (or reuse) each configuration in its own run folder; one row per run as a DataFrame.

    Rows hold the configuration's fields, validation accuracy and loss, test accuracy and loss
    (None when `evaluate_test` is False), wall seconds, whether the run was reused, and its commit.
    """
    rows = []
    configs = list(configs)
    started = time.perf_counter()
    for i, config in enumerate(configs, 1):
        folder = run_folder(store, config)
        try:
            result = fit_or_reuse(config, run_dir=folder, reuse=reuse, dataset=dataset, evaluate_test=evaluate_test,
                                  progress=progress, log=lambda *_: None)
        except NonFiniteLoss as exc:  # a diverging trial is a result (a bad configuration), not a reason to stop
            if evaluate_test:  # ...but a configuration being measured must train
                raise
            log(f"[{i}/{len(configs)}] {folder.name}: diverged ({exc}); scored as NaN")
            rows.append({**config.to_dict(), "run": folder.name, "val_accuracy": math.nan, "val_loss": math.nan,
                         "test_accuracy": None, "test_loss": None, "val_images": None, "seconds": math.nan, "reused": False,
                         "git_commit": None, "torch": None, "device": None, "diverged": True})
            continue
        m, reused = result.metrics, result.reused
        prov = m.get("provenance") or {}
        if evaluate_test and m.get("test_accuracy") is None:
            raise ConfigError(f"{folder} holds a run without a test evaluation; delete it to train it again")
        rows.append({**config.to_dict(), "run": folder.name, "val_accuracy": m["val_accuracy"], "val_loss": m["val_loss"],
                     "test_accuracy": m["test_accuracy"] if evaluate_test else None,
                     "test_loss": m["test_loss"] if evaluate_test else None,
                     "val_images": m["val_images"], "seconds": m["seconds"], "reused": reused,
                     "git_commit": prov.get("git_commit"), "torch": prov.get("torch"),
                     "device": prov.get("device_name") or prov.get("device"), "diverged": False})
        test = f", test {100 * m['test_accuracy']:.2f}%" if evaluate_test else ""
        log(f"[{i}/{len(configs)}] {folder.name}: val {100 * m['val_accuracy']:.2f}%{test}, "
            f"{m['seconds']:.0f} s{' (reused)' if reused else ''}; {time.perf_counter() - started:.0f} s so far")
    return pd.DataFrame(rows)


def provenance_line(frame) -> str:
    """Where a set of runs came from: how many, trained at which commits, their summed wall time."""
    trained = frame[~frame["reused"]] if "reused" in frame else frame
    found = lambda column: ", ".join(sorted({str(v) for v in frame.get(column, []) if v})) or "unknown"  # noqa: E731
    return (f"{len(frame)} runs ({len(trained)} trained now, {len(frame) - len(trained)} reused), "
            f"trained at commit {found('git_commit')} with torch {found('torch')} on {found('device')}; "
            f"summed wall time {frame['seconds'].sum():.0f} s (training and evaluation of each run, seeds "
            f"{', '.join(map(str, sorted(set(frame['seed']))))}).")


# ----------------------------------------------------------------------------- the ablation


def ablation_configs(settings: Settings, augments=ABLATION_AUGMENTS, **overrides) -> list:
    unknown = [a for a in augments if a not in ABLATION_AUGMENTS]
    if unknown:
        raise ConfigError(f"unknown augmentation {', '.join(map(repr, unknown))}; choose from: {', '.join(ABLATION_AUGMENTS)}")
    return [base_config(settings, augment=a, seed=s, **overrides) for a in augments for s in settings.seeds]


def group_table(frame, by: str, reference: str, confidence: float = 0.95, alpha: float = 0.05):
    """Per value of `by`: n, validation and test accuracy as mean ± std [t-interval] in percent, and
    Welch's t-test of the test accuracy against the `reference` group. Returns (table, sentences)."""
    order = list(dict.fromkeys(frame[by]))
    if reference not in order:
        raise ConfigError(f"the reference {reference!r} is not among the {by} values {order}")
    ref_test = frame.loc[frame[by] == reference, "test_accuracy"]
    rows, sentences = [], []
    for value in order:
        group = frame[frame[by] == value]
        val = stats.summarize(group["val_accuracy"], confidence)
        test = stats.summarize(group["test_accuracy"], confidence)
        row = {by: value, "n": val.n, "val accuracy % (mean ± std [95% CI])": stats.format_interval(val),
               "test accuracy % (mean ± std [95% CI])": stats.format_interval(test)}
        if value == reference:
            row.update({"test Δ vs " + reference: "—", "p (Welch)": "—"})
        else:
            comparison = stats.welch_test(group["test_accuracy"], ref_test, confidence)
            row.update({"test Δ vs " + reference: f"{100 * comparison.difference:+.2f} "
                        f"[{100 * comparison.ci_low:+.2f}, {100 * comparison.ci_high:+.2f}]",
                        "p (Welch)": "n/a" if math.isnan(comparison.p_value) else f"{comparison.p_value:.3g}"})
            sentences.append(stats.verdict(str(value), reference, comparison, alpha=alpha))
        rows.append(row)
    return pd.DataFrame(rows).set_index(by), sentences


# ----------------------------------------------------------------------------- the search


def search_grid(settings: Settings, space: dict = SEARCH_SPACE) -> list[dict]:
    """Every combination of the search space, epochs as whole numbers; the recipe's own values first."""
    epochs = sorted({max(1, round(f * settings.epochs)) for f in space["epochs"]})
    grid = []
    for optimizer in space["optimizer"]:
        for lr, wd, bs, ls, ep in itertools.product(space["lr"][optimizer], space["weight_decay"], space["batch_size"],
                                                   space["label_smoothing"], epochs):
            grid.append({"optimizer": optimizer, "lr": lr, "weight_decay": wd, "batch_size": bs,
                         "label_smoothing": ls, "epochs": ep})
    return grid


def sample_trials(settings: Settings, n: int | None = None, seed: int = 0, space: dict = SEARCH_SPACE) -> list[dict]:
    """Random search without repeats: trial 0 is the seed recipe itself, the rest drawn from the grid by `seed`."""
    n = settings.trials if n is None else n
    baseline = baseline_knobs(settings)
    others = [g for g in search_grid(settings, space) if g != baseline]
    if n > len(others) + 1:
        raise ConfigError(f"TRIALS is {n} but the search space holds only {len(others) + 1} configurations")
    return [baseline] + random.Random(seed).sample(others, n - 1)


def trial_configs(settings: Settings, trials: list[dict]) -> list:
    return [base_config(settings, augment=settings.augment, seed=SEARCH_TRIAL_SEED, **t) for t in trials]


def retrain_configs(settings: Settings, knobs: dict) -> list:
    """The chosen knobs on every seed of `settings`: the runs that are evaluated on the test set."""
    return [base_config(settings, augment=settings.augment, seed=seed, **knobs) for seed in settings.seeds]


def baseline_knobs(settings: Settings) -> dict:
    """The seed recipe's own values of the searched knobs (trial 0 of every search), at the experiments' epochs."""
    recipe = recipe_config("seed")
    return {**{knob: getattr(recipe, knob) for knob in KNOBS}, "epochs": settings.epochs}


def search_table(frame):
    """The trials sorted by validation accuracy (best first; ties by lower validation loss)."""
    table = frame.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).reset_index(drop=True)
    table.index = table.index + 1
    table.index.name = "rank"
    shown = table[[*KNOBS, "val_accuracy", "val_loss", "seconds"]].copy()
    shown["val_accuracy"] = (100 * shown["val_accuracy"]).round(2)
    shown["val_loss"] = shown["val_loss"].round(4)
    shown["seconds"] = shown["seconds"].round(0).astype(int)
    return shown.rename(columns={"val_accuracy": "val accuracy %", "val_loss": "val loss", "seconds": "wall s"})


def best_trial(frame) -> dict:
    """The knobs of the trial with the best validation accuracy. The test set plays no part."""
    if frame["test_accuracy"].notna().any():
        raise ConfigError("the trials carry test results; choose the best configuration from trials scored on validation only")
    if frame["val_accuracy"].isna().all():
        raise ConfigError("every trial diverged; lower the learning rates in SEARCH_SPACE")
    best = frame.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    return {k: (best[k].item() if hasattr(best[k], "item") else best[k]) for k in KNOBS}


def describe_knobs(knobs: dict) -> str:
    epochs = knobs["epochs"]
    return (f"{knobs['optimizer']} lr {knobs['lr']:g}, weight decay {knobs['weight_decay']:g}, batch size "
            f"{knobs['batch_size']}, label smoothing {knobs['label_smoothing']:g}, {epochs} epoch{'s' if epochs != 1 else ''}")


def markdown_section(title: str, intro: list[str], table, sentences: list[str] = (), footer: list[str] = ()) -> str:
    """A results.md section: title, introduction, the table, one sentence per row, provenance."""
    lines = [f"## {title}", "", *intro, "", markdown_table(table), ""]
    lines += [f"- {s}" for s in sentences] + ([""] if sentences else [])
    lines += list(footer)
    return "\n".join(lines).rstrip() + "\n"
