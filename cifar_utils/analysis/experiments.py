"""Experiments over many runs (notebooks 04 and 05): their budget, run records keyed by configuration, the test once.

Every configuration an experiment trains is an ordinary run folder named by the digest of its
configuration, `<outputs>/experiments/runs/<digest>/`. Its records (config.json, history.csv,
metrics.json) are small and committed; its weights (model.pt) are not (.gitignore). So a rerun of
a notebook, or the report in a fresh clone, reuses every finished run from its records alone,
without training it again; `rerun=True` (the notebooks' RERUN) trains them again. Which run is
reused, at which precision, is reuse.decide_experiment_run's. The two notebooks share the budget and
the store, so a configuration both train (the fast recipe on the same seeds) is trained once.

The test set chooses nothing: runs train with `evaluate_test=False` and are compared on the
validation split. `record_test` evaluates the runs of the configuration finally reported on the
test set, once, at the end, and keeps the result in their metrics.json, where a clone finds it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.config import TrainConfig, recipe_config
from ..core.evaluation import PRECISION_DTYPES, evaluate, resolve_device, with_precision
from ..errors import CifarError, ConfigError, NonFiniteLoss
from ..runs import run_files
from ..runs.reuse import decide_experiment_run
from ..runs.training import carry_out
from . import stats
from .tables import markdown_table

RUNS = run_files.EXPERIMENT_RUNS  # under the outputs folder: the committed run records
JOURNAL = "studies.journal"  # notebook 05's default Optuna storage, beside RUNS
VALIDATION = ("val_accuracy", "val_loss", "val_accuracy_no_tta")
RECIPE = "fast"


@dataclass(frozen=True)
class Budget:
    """How big every run of an experiment is: epochs, network widths, training and validation images."""

    smoke: bool
    epochs: int
    widths: tuple[int, ...] | None  # None: the recipe's (64, 256, 256)
    train_subset: int | None  # None: all 50,000 less the validation split
    val_size: int
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None  # None: the recipe's

    @property
    def val_images(self) -> int:
        return (
            min(self.val_size, max(1, self.train_subset // 5)) if self.train_subset else self.val_size
        )  # data.split_dataset

    def describe(self) -> str:
        widths = f"widths {', '.join(map(str, self.widths))}" if self.widths else "the recipe's widths"
        images = (
            f"{self.train_subset:,} training images"
            if self.train_subset
            else f"all {50000 - self.val_size:,} training images"
        )
        batch = f" in batches of {self.batch_size}" if self.batch_size else ""
        return (
            f"the {RECIPE} recipe at {widths}, {self.epochs} epoch{'s' if self.epochs != 1 else ''} on {images}{batch} "
            f"(its schedule decays to zero), scored on {self.val_images:,} held-out validation images"
            + (" (smoke mode: the numbers only show that the pipeline works)" if self.smoke else "")
        )


# The default budget, chosen by measurement (bench/RESULTS.md, notebook 04's pilot): the fast net at a quarter of its
# widths, 2 epochs in batches of 500 reach ~85.7% validation in ~35 s on a 2-core CPU with a seed-to-seed spread of
# ~0.2 points, so 4 paired seeds resolve a 1-point effect. The recipe's own 8 epochs at full width take ~13 minutes a run.
FULL = {"epochs": 2, "widths": (32, 64, 64), "train_subset": None, "val_size": 5000, "batch_size": 500}
# Smoke: a second a run; the subset keeps a fifth as many validation images (200), small batches give it ten steps.
SMOKE = {"epochs": 1, "widths": (8, 16, 16), "train_subset": 1000, "val_size": 5000, "batch_size": 100}


def budget(
    smoke: bool = False,
    epochs: int | None = None,
    widths=None,
    train_subset: int | None = None,
    val_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
) -> Budget:
    """The notebooks' EXPERIMENT_* parameters resolved (None: the full or smoke default; train_subset 0: all images).
    A short budget wants a smaller batch than the recipe's 2000: two epochs of 2000 are only 45 steps."""
    defaults = SMOKE if smoke else FULL
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigError(
            f"EXPERIMENT_BATCH_SIZE must be a positive whole number (or None for the recipe's), got {batch_size!r}"
        )
    epochs = defaults["epochs"] if epochs is None else epochs
    widths = defaults["widths"] if widths is None else widths
    subset = defaults["train_subset"] if train_subset is None else (train_subset or None)
    val_size = defaults["val_size"] if val_size is None else val_size
    for name, value, least in (("EXPERIMENT_EPOCHS", epochs, 1), ("EXPERIMENT_VAL_SIZE", val_size, 10)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            why = " (the comparisons are scored on the validation split)" if name == "EXPERIMENT_VAL_SIZE" else ""
            raise ConfigError(f"{name} must be a whole number of at least {least}{why}, got {value!r}")
    if subset is not None and (not isinstance(subset, int) or isinstance(subset, bool) or subset < 10):
        raise ConfigError(
            f"EXPERIMENT_SUBSET must be a whole number of at least 10 training images (or 0 for all), "
            f"got {train_subset!r}"
        )
    if widths is not None:
        if (
            isinstance(widths, (str, bytes))
            or len(widths) != 3
            or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths)
        ):
            raise ConfigError(
                f"EXPERIMENT_WIDTHS must be three positive whole numbers like [32, 128, 128] "
                f"(or None for the recipe's), got {widths!r}"
            )
        widths = tuple(widths)
    found = Budget(
        bool(smoke),
        epochs,
        widths,
        subset,
        val_size,
        device or "auto",
        precision or "auto",
        batch_size or defaults["batch_size"],
    )
    base_config(found)  # a bad device or precision is refused here, not at the first run
    return found


SEARCH = {"trials": 12, "top_k": 2, "seeds": 4}
SMOKE_SEARCH = {"trials": 2, "top_k": 2, "seeds": 2}


def search_settings(
    smoke: bool = False, trials: int | None = None, top_k: int | None = None, seeds: int | None = None
) -> tuple[int, int, int]:
    """Notebook 05's (N_TRIALS, TOP_K, RETRAIN_SEEDS) resolved (None: the full or smoke default) and checked."""
    defaults = SMOKE_SEARCH if smoke else SEARCH
    values = [defaults[k] if v is None else v for k, v in (("trials", trials), ("top_k", top_k), ("seeds", seeds))]
    for name, value, least in zip(("N_TRIALS", "TOP_K", "RETRAIN_SEEDS"), values, (1, 1, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            why = " (a paired comparison needs two seeds)" if name == "RETRAIN_SEEDS" else ""
            raise ConfigError(f"{name} must be a whole number of at least {least}{why}, got {value!r}")
    return tuple(values)


def base_config(budget: Budget, seed: int = 0, **overrides) -> TrainConfig:
    """The fast recipe at the budget's size; `overrides` are TrainConfig fields (model_kwargs adds to the recipe's)."""
    kwargs = dict(overrides.pop("model_kwargs", None) or {})
    if (
        budget.widths
    ):  # the recipe's head is scaled by 1/width (airbench94_muon's parametrisation): it follows the width
        kwargs = {"widths": list(budget.widths), "head_scale": 1 / budget.widths[-1], **kwargs}
    values = {"batch_size": budget.batch_size, **overrides}  # None keeps the recipe's
    return recipe_config(
        RECIPE,
        epochs=budget.epochs,
        train_subset=budget.train_subset,
        val_size=budget.val_size,
        device=budget.device,
        precision=budget.precision,
        seed=seed,
        model_kwargs=kwargs or None,
        **values,
    )


def runs_store(out_dir, runs_dir=None) -> Path:
    """Where the run records live: `runs_dir`, else <out_dir>/experiments/runs."""
    return Path(runs_dir) if runs_dir else Path(out_dir) / RUNS


# ----------------------------------------------------------------------------- run records


def reusable_run(store: str | Path, config: TrainConfig) -> tuple[Path, TrainConfig]:
    """Where the finished run of `config` to reuse lives, and `config` at the precision it was made in; else the
    folder in `store` to train it into, and `config`. reuse.decide_experiment_run decides."""
    decision = decide_experiment_run(store, config)
    return decision.folder, decision.config


def train_runs(
    configs,
    store: str | Path,
    dataset,
    *,
    rerun: bool = False,
    allow_diverged: bool = False,
    labels=None,
    done: pd.DataFrame | None = None,
    progress: bool = False,
    log=print,
) -> pd.DataFrame:
    """Train (or reuse) each configuration in its own run folder, scored on validation; one row per run.

    Rows hold `labels` (one dict per configuration, e.g. the arm's name), the configuration's fields,
    validation accuracy and loss (and accuracy without test-time augmentation), wall seconds, whether
    the run was reused, and where and at which commit it was trained. No test number: see record_test.
    A run whose loss diverges stops the experiment, or with `allow_diverged` is a row of NaN. `done`: rows this
    function returned earlier in the same session (a pilot's); their runs are taken from there, even with `rerun`.
    """
    configs = list(configs)
    labels = list(labels) if labels is not None else [{}] * len(configs)
    rows, started = [], time.perf_counter()
    earlier = {} if done is None else {row["run"]: row for row in done.to_dict("records")}
    for i, (config, label) in enumerate(zip(configs, labels), 1):
        decision = decide_experiment_run(store, config, rerun=rerun)
        folder = decision.folder
        if folder.name in earlier:
            rows.append({**earlier[folder.name], **label})
            continue
        name = " ".join(str(v) for v in label.values()) or folder.name
        try:
            result = carry_out(decision, dataset=dataset, evaluate_test=False, progress=progress, log=lambda *_: None)
        except NonFiniteLoss as exc:
            if not allow_diverged:
                raise
            log(f"[{i}/{len(configs)}] {name}, seed {config.seed}: diverged ({exc}); scored as NaN")
            rows.append(
                {
                    **label,
                    **config.to_dict(),
                    "run": folder.name,
                    **dict.fromkeys(VALIDATION, math.nan),
                    "seconds": math.nan,
                    "reused": False,
                    "diverged": True,
                }
            )
            continue
        m, prov = result.metrics, (result.metrics.get("provenance") or {})
        rows.append(
            {
                **label,
                **config.to_dict(),
                "run": folder.name,
                **{k: m.get(k, math.nan) for k in VALIDATION},
                "seconds": m["seconds"],
                "train_seconds": m.get("train_seconds", m["seconds"]),
                "train_images": m.get("train_images"),
                "reused": result.reused,
                "diverged": False,
                "git_commit": prov.get("git_commit"),
                "torch": prov.get("torch"),
                "device": prov.get("device_name") or prov.get("device"),
                "trained_precision": with_precision(result.config, resolve_device(config.device)).precision,
                "trained_on": prov.get("cpu") or prov.get("device_name"),
            }
        )
        log(
            f"[{i}/{len(configs)}] {name}, seed {config.seed}: val {100 * m['val_accuracy']:.2f}%, {m['seconds']:.0f} s"
            f"{' (reused)' if result.reused else ''}; {time.perf_counter() - started:.0f} s so far"
        )
    return pd.DataFrame(rows)


def record_test(config: TrainConfig, store: str | Path, dataset, log=print) -> dict:
    """The test result of the finished run of `config`: read from its metrics.json, or evaluated now (once, with
    the configuration's test-time augmentation) and written there, so that later readers need no weights."""
    folder, _ = reusable_run(store, config)
    metrics = run_files.read_json(folder / run_files.METRICS)
    if metrics.get("test_accuracy") is None:
        if not (folder / run_files.CHECKPOINT).is_file():
            raise CifarError(
                f"{folder} holds the records of a run without a test result and without its weights "
                f"({run_files.CHECKPOINT}); train it again (RERUN=True) to evaluate it"
            )
        loaded = run_files.load_run(folder, resolve_device(config.device))
        config = loaded.config
        result = evaluate(
            loaded.model,
            dataset.test_images,
            dataset.test_labels,
            batch_size=config.eval_batch_size,
            device=resolve_device(config.device),
            precision=PRECISION_DTYPES[config.precision],
            tta=config.tta,
            tta_share=config.tta_share,
        )
        metrics.update(
            test_accuracy=result["accuracy"],
            test_loss=result["loss"],
            test_images=result["n"],
            test_accuracy_no_tta=result.get("accuracy_no_tta"),
        )
        run_files.write_json(folder / run_files.METRICS, metrics)
        log(f"{folder.name} (seed {config.seed}): test {100 * result['accuracy']:.2f}% on {result['n']:,} images")
    return {
        "seed": config.seed,
        "run": folder.name,
        **{k: metrics.get(k) for k in ("test_accuracy", "test_loss", "test_images")},
    }


def test_results(configs, store: str | Path, dataset, log=print) -> pd.DataFrame:
    return pd.DataFrame([record_test(c, store, dataset, log) for c in configs])


def validation_table(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of `by` (first-seen order): seeds, validation accuracy % as mean ± std [95% t interval], and the
    mean itself (NaN when a seed diverged: a configuration that fails on some seeds is not a candidate)."""
    rows = []
    for value, group in frame.groupby(by, sort=False):
        accuracies = group["val_accuracy"].astype(float)
        ok = accuracies.notna().all() and len(accuracies) >= 1
        rows.append(
            {
                by: value,
                "seeds": len(group),
                "diverged": int(accuracies.isna().sum()),
                "val accuracy % (mean ± std [95% CI])": stats.format_interval(stats.summarize(accuracies))
                if ok and len(accuracies) > 1
                else ("n/a" if not ok else f"{100 * accuracies.iloc[0]:.2f} (n=1)"),
                "mean": float(accuracies.mean()) if ok else math.nan,
            }
        )
    return pd.DataFrame(rows).set_index(by)


def choose_by_validation(frame: pd.DataFrame, by: str):
    """The value of `by` with the highest mean validation accuracy over its seeds; the test set plays no part."""
    if any(str(c).startswith("test_") for c in frame.columns):
        raise ConfigError("the runs to choose from carry test results; choose from runs scored on validation only")
    means = validation_table(frame, by)["mean"]
    if means.isna().all():
        raise CifarError("every configuration diverged on some seed; nothing can be chosen")
    return means.idxmax()


# ----------------------------------------------------------------------------- provenance and results.md


def provenance_line(frame) -> str:
    """Where a set of runs came from: how many, trained at which commits, their summed wall time."""
    trained = frame[~frame["reused"].astype(bool)] if "reused" in frame else frame

    def found(column):
        return ", ".join(sorted({str(v) for v in frame.get(column, []) if isinstance(v, str) and v})) or "unknown"  # noqa: E731

    precisions = (
        ", ".join(f"{n} in {p}" for p, n in frame["trained_precision"].value_counts().items())
        if "trained_precision" in frame
        else "unknown"
    )
    return (
        f"{len(frame)} runs ({len(trained)} trained now, {len(frame) - len(trained)} reused from their records), "
        f"trained at commit {found('git_commit')} with torch {found('torch')} on {found('device')}, {precisions}; "
        f"summed wall time {frame['seconds'].sum():.0f} s (training and validation of each run, seeds "
        f"{', '.join(map(str, sorted(set(frame['seed']))))})."
    )


def markdown_section(title: str, intro: list[str], table, sentences: list[str] = (), footer: list[str] = ()) -> str:
    """A results.md section: title, introduction, the table, one sentence per row, provenance."""
    lines = [f"## {title}", "", *intro, "", markdown_table(table), ""]
    lines += [f"- {s}" for s in sentences] + ([""] if sentences else [])
    lines += list(footer)
    return "\n".join(lines).rstrip() + "\n"
