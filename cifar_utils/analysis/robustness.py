"""Notebook 06's numbers: every run's logits on the clean and the corrupted test sets, accuracy per
corruption and severity, summaries over the seeds of a configuration, temperature scaling before and
after, and the sentences of its conclusions, written from those numbers.

Every prediction here is one plain forward pass at the run's precision, without test-time
augmentation, so the clean and the corrupted numbers compare like with like (a run's own test
accuracy in metrics.json may include its TTA).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.evaluation import predict_logits, replay_precision
from ..runs import run_files
from . import calibration as CAL
from . import corruptions as CR
from .stats import verdict, welch_test
from .tables import fmt

CLEAN = "clean"


@dataclass
class Evaluated:
    """One run's predictions: clean and per (corruption, severity) logits, and its temperature."""

    name: str
    group: str  # runs that differ only in their seed share it
    seed: int
    config: object
    clean: torch.Tensor
    corrupted: dict = field(default_factory=dict)  # (corruption, severity) -> logits
    temperature: float | None = None
    held_out: str = ""  # the images T was fitted on, or why it was not fitted


def group_runs(run_dirs) -> dict[Path, str]:
    """{run folder: group label}: runs whose configs differ only in the seed form one group, labelled by
    the run name without its '-seed<k>' part (the full name where two groups would share a label)."""
    keys, labels = {}, {}
    for run_dir in run_dirs:
        config = {
            k: v
            for k, v in run_files.read_json(Path(run_dir) / run_files.CONFIG).items()
            if k not in ("seed", "provenance", "device")
        }
        key = json.dumps(config, sort_keys=True, default=str)
        keys[run_dir] = key
        labels.setdefault(key, re.sub(r"-seed\d+", "", Path(run_dir).name))
    counts = pd.Series(list(labels.values())).value_counts()
    return {d: labels[k] if counts[labels[k]] == 1 else Path(d).name for d, k in keys.items()}


def logits_of(run: run_files.RunRecord, images: torch.Tensor, device) -> torch.Tensor:
    return predict_logits(
        run.model,
        images,
        batch_size=run.config.eval_batch_size,
        device=device,
        precision=replay_precision(run.config.precision, device),
        tta=False,
    )


# The report evaluates the first 2,000 test images: the corruptions' table then costs minutes, not a quarter of
# an hour, on a 2-core CPU. Notebook 06 run by hand defaults to the same images, so the report's cache serves it.
REPORT_TEST_IMAGES = 2000
BYTES_PER_IMAGE = 3 * 32 * 32  # uint8: what one corrupted image costs in the cache


def cost_line(n_images: int, n_sets: int, n_runs: int, cache_dir) -> str:
    """What the corrupted sets will cost, said before they are made: cache size and what is cached already."""
    cached = sum(f.stat().st_size for f in Path(cache_dir).glob("*.pt")) if Path(cache_dir).is_dir() else 0
    need = n_sets * n_images * BYTES_PER_IMAGE
    return (
        f"{n_sets} corrupted sets of {n_images:,} images, each predicted by {n_runs} run(s): about {need / 1e9:.2f} GB "
        f"in the cache ({cached / 1e9:.2f} GB there now, shared by every image count). Time grows with the images: "
        f"{n_images / REPORT_TEST_IMAGES:.0f}x the report's {REPORT_TEST_IMAGES:,}."
    )


def evaluate_corruptions(
    loaded: dict, images: torch.Tensor, names, severities, seed: int, cache_dir, device, progress: bool = True
):
    """Every run's logits on every corrupted set, one set in memory at a time (made, or read from the cache).

    `loaded` is {name: (RunRecord, Evaluated)}. Returns the generation records as a DataFrame and the
    first image of every set, {(corruption, severity): (3, H, W) uint8}, for a figure.
    """
    sha = CR.images_digest(images)
    records, examples = [], {}
    evaluation_seconds = 0.0
    pairs = [(n, s) for n in names for s in severities]
    for name, severity in tqdm(pairs, desc="corrupted test sets", disable=not progress):
        made = CR.cached(images, name, severity, seed, cache_dir, images_sha=sha)
        started = time.perf_counter()
        for run, evaluated in loaded.values():
            evaluated.corrupted[(name, severity)] = logits_of(run, made.images, device)
        evaluation_seconds += time.perf_counter() - started
        examples[(name, severity)] = made.images[0]
        records.append(
            {
                "corruption": name,
                "severity": severity,
                "seconds": made.seconds,
                "threads": made.threads,
                "cpu": made.cpu,
                "from_cache": made.from_cache,
            }
        )
    frame = pd.DataFrame(records)
    frame.attrs["evaluation_seconds"] = evaluation_seconds  # every run's predictions on every set, this session
    return frame, examples


def timing_line(generation: pd.DataFrame, n_runs: int) -> str:
    """How long the sets took to make (as recorded when made) and to evaluate (now), in one sentence."""
    cached = int(generation["from_cache"].sum())
    return (
        f"{len(generation)} sets ({cached} read from the cache): making them took {generation['seconds'].sum():.1f} s "
        f"when they were made; evaluating {n_runs} run(s) on them took {generation.attrs.get('evaluation_seconds', 0):.1f} s now."
    )


def accuracy_frame(evaluated: list[Evaluated], labels: torch.Tensor) -> pd.DataFrame:
    """Long table: run, group, seed, corruption, family, severity (0 for clean), accuracy."""
    rows = []
    for ev in evaluated:
        base = {"run": ev.name, "group": ev.group, "seed": ev.seed}
        rows.append(
            {
                **base,
                "corruption": CLEAN,
                "family": CLEAN,
                "severity": 0,
                "accuracy": (ev.clean.argmax(1) == labels).double().mean().item(),
            }
        )
        for (name, severity), logits in ev.corrupted.items():
            rows.append(
                {
                    **base,
                    "corruption": name,
                    "family": CR.FAMILY_OF[name],
                    "severity": severity,
                    "accuracy": (logits.argmax(1) == labels).double().mean().item(),
                }
            )
    return pd.DataFrame(rows)


def robustness_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run: clean accuracy, mean corruption accuracy (over every corruption and severity), its relative
    drop from clean, and the mean accuracy of each family."""
    rows = []
    for run, part in frame.groupby("run", sort=False):
        clean = part.loc[part.corruption == CLEAN, "accuracy"].item()
        corrupted = part[part.corruption != CLEAN]
        mca = corrupted["accuracy"].mean()
        row = {
            "run": run,
            "group": part["group"].iloc[0],
            "seed": part["seed"].iloc[0],
            "clean": clean,
            "mca": mca,
            "relative_drop": (clean - mca) / clean if clean else float("nan"),
        }
        families = corrupted.groupby("family")["accuracy"].mean()
        row.update({f"family_{f}": families[f] for f in CR.FAMILIES if f in families})
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(values, spec: str = ".2%") -> str:
    values = pd.Series(values, dtype=float)
    if len(values) < 2:
        return fmt(values.iloc[0], spec)
    return f"{fmt(values.mean(), spec)} ± {fmt(values.std(ddof=1), spec)}"


def headline_table(summary: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per group: seeds, clean accuracy, mean corruption accuracy and relative drop (mean ± std over
    seeds where there are several), each family's mean accuracy, the hardest corruption."""
    rows = []
    families = [c for c in summary.columns if c.startswith("family_")]
    for group, part in summary.groupby("group", sort=False):
        per_corruption = (
            frame[(frame.group == group) & (frame.corruption != CLEAN)].groupby("corruption")["accuracy"].mean()
        )
        worst = per_corruption.idxmin()
        row = {
            "Model": group,
            "Seeds": len(part),
            "Clean accuracy": _mean_std(part["clean"]),
            "Mean corruption accuracy": _mean_std(part["mca"]),
            "Relative drop": _mean_std(part["relative_drop"]),
        }
        row.update({f"{f.removeprefix('family_')} (mean)": _mean_std(part[f]) for f in families})
        row["Hardest corruption"] = f"{worst} ({fmt(per_corruption[worst], '.2%')})"
        rows.append(row)
    return pd.DataFrame(rows).set_index("Model")


def accuracy_grid(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """Accuracy (mean over the group's seeds) with corruptions as rows and severities as columns."""
    part = frame[(frame.group == group) & (frame.corruption != CLEAN)]
    grid = part.groupby(["corruption", "severity"])["accuracy"].mean().unstack("severity")
    return grid.loc[[n for n in CR.CORRUPTIONS if n in grid.index]]


# ----------------------------------------------------------------------------- calibration


def fit_temperatures(loaded: dict, dataset, device, limit: int | None = None) -> None:
    """T of every run, fitted on its held-out training images (calibration.held_out_images; the first `limit`
    of them when given: one number needs no 49,000 images), or None with why."""
    for run, ev in loaded.values():
        held = CAL.held_out_images(dataset, run.config)
        if held is not None and limit and len(held.labels) > limit:
            held = CAL.HeldOut(held.images[:limit], held.labels[:limit], f"the first {limit:,} of {held.source}")
        if held is None:
            ev.temperature = None
            ev.held_out = (
                f"it trained on all {len(dataset.train_labels):,} training images (val_size "
                f"{run.config.val_size}), so no image is left to fit T on and calibration is skipped; "
                f"the test set never fits anything"
            )
            continue
        ev.temperature = CAL.fit_temperature(logits_of(run, held.images, device), held.labels)
        ev.held_out = held.source


def calibration_frame(evaluated: list[Evaluated], labels: torch.Tensor, n_bins: int = 15) -> pd.DataFrame:
    """NLL, Brier score and ECE before and after temperature scaling, per run and test set: clean, each
    severity (its corruptions pooled) and every corrupted set pooled."""
    rows = []
    for ev in evaluated:
        if ev.temperature is None:
            continue
        sets = {CLEAN: (ev.clean, labels)}
        severities = sorted({s for _, s in ev.corrupted})
        for severity in severities:
            chunks = [v for (_, s), v in ev.corrupted.items() if s == severity]
            sets[f"severity {severity}"] = (torch.cat(chunks), labels.repeat(len(chunks)))
        if ev.corrupted:
            sets["all corrupted"] = (torch.cat(list(ev.corrupted.values())), labels.repeat(len(ev.corrupted)))
        for name, (logits, truth) in sets.items():
            before, after = (
                CAL.calibration_scores(logits, truth, 1.0, n_bins),
                CAL.calibration_scores(logits, truth, ev.temperature, n_bins),
            )
            rows.append(
                {
                    "run": ev.name,
                    "group": ev.group,
                    "test set": name,
                    "T": ev.temperature,
                    **{f"{k} before": before[k] for k in ("nll", "brier", "ece")},
                    **{f"{k} after": after[k] for k in ("nll", "brier", "ece")},
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the explanation gallery


def weakest_classes(logits: torch.Tensor, labels: torch.Tensor, k: int) -> list[int]:
    """The k classes with the lowest clean accuracy (recall), lowest first; ties by class index."""
    recall = [
        (logits.argmax(1)[labels == c] == c).double().mean().item() if (labels == c).any() else math.inf
        for c in range(logits.shape[1])
    ]
    return sorted(range(len(recall)), key=lambda c: (recall[c], c))[:k]


def gallery_indices(logits: torch.Tensor, labels: torch.Tensor, classes: list[int], per_kind: int) -> list[tuple]:
    """(test index, class, correct?) for the first `per_kind` correct and misclassified test images of each class."""
    preds = logits.argmax(1)
    chosen = []
    for c in classes:
        for correct in (True, False):
            hits = torch.nonzero((labels == c) & ((preds == labels) == correct)).flatten()[:per_kind]
            chosen += [(int(i), c, correct) for i in hits]
    return chosen


# ----------------------------------------------------------------------------- the conclusions


def conclusions(
    summary: pd.DataFrame,
    frame: pd.DataFrame,
    calibration: pd.DataFrame,
    evaluated: list[Evaluated],
) -> list[str]:
    """Sentences stating what the numbers say; every number comes from the arguments. How long the corrupted sets
    took to make is the code rendering's business (timing_line), not a finding."""
    out = []
    for group, part in summary.groupby("group", sort=False):
        per_corruption = (
            frame[(frame.group == group) & (frame.corruption != CLEAN)].groupby("corruption")["accuracy"].mean()
        )
        seeds = f" (mean ± std over {len(part)} seeds)" if len(part) > 1 else ""
        out.append(
            f"{group}: clean accuracy {_mean_std(part['clean'])}, mean corruption accuracy "
            f"{_mean_std(part['mca'])}{seeds}, a relative drop of {_mean_std(part['relative_drop'], '.1%')}; "
            f"hardest corruption {per_corruption.idxmin()} ({fmt(per_corruption.min(), '.2%')}), "
            f"mildest {per_corruption.idxmax()} ({fmt(per_corruption.max(), '.2%')})."
        )
    groups = summary.groupby("group", sort=False)[["mca", "relative_drop"]].mean()
    if len(groups) > 1:
        best, worst = groups["mca"].idxmax(), groups["mca"].idxmin()
        out.append(
            f"Highest mean corruption accuracy: {best} ({fmt(groups.loc[best, 'mca'], '.2%')}), lowest: "
            f"{worst} ({fmt(groups.loc[worst, 'mca'], '.2%')}); smallest relative drop: "
            f"{groups['relative_drop'].idxmin()} ({fmt(groups['relative_drop'].min(), '.1%')})."
        )
        a, b = (summary.loc[summary.group == g, "mca"] for g in (best, worst))
        if len(a) > 1 and len(b) > 1:
            out.append(verdict(best, worst, welch_test(a, b), what="mean corruption accuracy"))
        else:
            out.append(
                f"{best} vs {worst} is not tested: a model with one seed gives no seed-to-seed spread to "
                f"compare the difference with."
            )
    families = frame[frame.corruption != CLEAN].groupby("family")["accuracy"].mean()
    if len(families) > 1:
        out.append(
            f"Averaged over every model and severity, {families.idxmin()} corruptions cost the most accuracy "
            f"(mean {fmt(families.min(), '.2%')}) and {families.idxmax()} the least ({fmt(families.max(), '.2%')})."
        )
    for ev in evaluated:
        if ev.temperature is None:
            out.append(f"{ev.name}: {ev.held_out}.")
            continue
        rows = calibration[calibration.run == ev.name].set_index("test set")
        text = (
            f"{ev.name}: temperature scaling fitted on {ev.held_out} gives T = {ev.temperature:.3f}; "
            f"ECE on the clean test set {fmt(rows.loc[CLEAN, 'ece before'], '.2%')} -> "
            f"{fmt(rows.loc[CLEAN, 'ece after'], '.2%')}, NLL {fmt(rows.loc[CLEAN, 'nll before'], '.3f')} -> "
            f"{fmt(rows.loc[CLEAN, 'nll after'], '.3f')}"
        )
        if "all corrupted" in rows.index:
            text += (
                f"; on the corrupted sets ECE {fmt(rows.loc['all corrupted', 'ece before'], '.2%')} -> "
                f"{fmt(rows.loc['all corrupted', 'ece after'], '.2%')}"
            )
        out.append(text + ".")
    return out
