"""What the notebooks need besides analysis: where they write and read, what to say about a run, and the
config vocabulary's notebook names (smoke mode, the training config from their parameters: core.config). Committed notebooks are kept clean by nbstripout and paired with a py:percent
text file by jupytext, both run by pre-commit (.pre-commit-config.yaml).

A notebook's parameters cell names every training knob as a capitalised `TrainConfig` field
(`LR` for `lr`); `train_overrides` collects the ones given.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

import pandas as pd

from . import paths
from .core.config import (  # noqa: F401 (the notebooks' names for the config vocabulary)
    SMOKE_ENV,
    SMOKE_TEST_IMAGES,
    SMOKE_TRAIN,
    recipe_config,
    smoke_default,
    train_overrides,
    train_parameters,
    training_config,
)
from .errors import ConfigError
from .runs import run_files

# pandas cuts a cell's text after 50 characters ("nesterov True, l..."), and the executed notebook keeps only the
# cut text, so no page style can bring it back: every notebook imports this module, so a reader sees every word,
# and the report's CSS wraps it.
pd.set_option("display.max_colwidth", None)


def import_modules(names) -> list:
    """Import your modules that register models or augmentations (a notebook's EXTRA_MODULES), before the
    training config names them. `names`: None, one module name, names separated by commas, or a list.
    A kernel imports what its PYTHONPATH or its working folder (the notebook's) holds."""
    if not names:
        return []
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    imported = []
    for name in filter(None, names):
        try:
            imported.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if not (name == exc.name or name.startswith(f"{exc.name}.")):
                raise  # the module exists; something it imports does not, and the traceback says what
            raise ConfigError(
                f"EXTRA_MODULES names {name!r}, which this kernel cannot import: put its folder on PYTHONPATH "
                f"or the module beside the notebook"
            ) from None
    return imported


def smoke_dataset(dataset):
    """The dataset with its test set cut to its first SMOKE_TEST_IMAGES images: smoke runs evaluate in seconds."""
    return dataclasses.replace(
        dataset,
        test_images=dataset.test_images[:SMOKE_TEST_IMAGES],
        test_labels=dataset.test_labels[:SMOKE_TEST_IMAGES],
    )


def run_story(record) -> str:
    """One sentence on what this run did in this session, for the notebook to show: trained here, resumed
    after an interruption, or reused from a finished run (with where, when and at which commit it was trained).
    `record` is the RunRecord that training.fit_or_reuse returned."""
    m = record.metrics or {}
    prov = m.get("provenance") or {}
    folder = f"`{record.run_dir}`" if record.run_dir else "memory (no run folder)"
    epochs, config = len(record.history), record.config
    where = (
        f"on {prov.get('device_name', 'an unrecorded device')} at {config.precision}, commit "
        f"{prov.get('git_commit', 'unknown')}"
    )
    timing = (
        f"{m['seconds']:.0f} s for training and evaluation ({m.get('images_per_second', 0):.0f} training images/s)"
        if m.get("seconds") is not None
        else "no recorded time"
    )
    if record.reused:
        cpu = prov.get("cpu") or prov.get("device_name", "an unrecorded device")
        took = (
            f"trained in {m['seconds']:.0f} s on {cpu} (recorded)"
            if m.get("seconds") is not None
            else "no recorded time"
        )
        return (
            f"**Reused, not trained:** {folder} already held this configuration finished ({epochs} epochs), "
            f"{took}, {prov.get('date', 'at an unrecorded date')} at {config.precision}, commit "
            f"{prov.get('git_commit', 'unknown')}. Set `REUSE = False` to train it again."
        )
    if record.resumed_after is not None:
        return (
            f"**Resumed:** {folder} held an interrupted run with {record.resumed_after} of {config.epochs} epochs "
            f"finished; epochs {record.resumed_after + 1}–{config.epochs} were trained now {where}. The time covers "
            f"this session only: {timing}."
        )
    return f"**Trained now:** {epochs} epochs {where}, {timing}; saved in {folder}."


def runs_search_path(runs_dir, out) -> list:
    """Where a notebook looks up runs by name: `runs_dir` (else <out>/runs), then, when the notebook runs by hand
    (writing to scratch/), the committed runs in outputs/runs, which it reads and never writes."""
    own = Path(runs_dir) if runs_dir else Path(out) / "runs"
    committed = paths.committed_outputs_dir() / "runs"
    return [own] if own.resolve() == committed.resolve() or not committed.is_dir() else [own, committed]


def where_this_writes(out) -> str:
    """One line for the top of a notebook: where its files go, and that the committed report is left alone."""
    out = Path(out)
    if out.resolve() == paths.committed_outputs_dir().resolve():
        return f"Writing to {out} (the committed report's folder, as you asked)."
    if out.resolve() == (paths.project_dir() / paths.SCRATCH).resolve():
        return (
            f"Writing to {paths.SCRATCH}/ (git-ignored): running a notebook by hand never changes a committed "
            f"file. The committed runs and records in outputs/ are read, and reused where they match."
        )
    return ""  # the report's own staging folder: nothing for a reader to act on


def run_heading(run_dir) -> str:
    """What a run is, before its numbers: its epochs and training images, and a warning when it is a short run
    or trained on a subset, so an analysis never passes off a quick run as the baseline."""
    config = run_files.read_json(Path(run_dir) / run_files.CONFIG)
    metrics_file = Path(run_dir) / run_files.METRICS
    metrics = run_files.read_json(metrics_file) if metrics_file.is_file() else {}
    images = metrics.get("train_images") or config.get("train_subset") or "all"
    images = f"{images:,}" if isinstance(images, int) else images
    line = (
        f"{config.get('epochs')} epochs on {images} training images ({config.get('model')}, {config.get('optimizer')})."
    )
    base = recipe_config("fast" if config.get("model") == "fast" else "seed")
    short = config.get("epochs", 0) < base.epochs
    if short or config.get("train_subset"):
        what = " and ".join(
            w for w, on in (("a short run", short), ("a training subset", config.get("train_subset"))) if on
        )
        line += f" **Caution:** {what}; its numbers say little about the recipe's {base.epochs}-epoch result."
    return line


def quiet_kernel(prefix: str | None = None) -> Path:
    """Lower the log level of this environment's python3 kernel to errors (`make setup` calls it), so papermill run
    by hand prints no "Kernel is running over TCP without encryption" warning. Returns the kernel.json changed."""
    spec = Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    kernel = json.loads(spec.read_text())
    if QUIET_KERNEL_ARGUMENT not in kernel["argv"]:
        kernel["argv"].append(QUIET_KERNEL_ARGUMENT)
        spec.write_text(json.dumps(kernel, indent=1) + "\n")
    return spec


QUIET_KERNEL_ARGUMENT = "--IPKernelApp.log_level=ERROR"

if __name__ == "__main__":  # python -m cifar_utils.notebook quiet-kernel
    if sys.argv[1:] != ["quiet-kernel"]:
        sys.exit("usage: python -m cifar_utils.notebook quiet-kernel")
    print(f"kernel start-up warnings off in {quiet_kernel()}")


def show_findings(sentences, heading: str = "Findings") -> None:
    """Display a notebook's findings as one Markdown block (its cell is tagged `findings`, which the report's
    renderings show first, under the title)."""
    from IPython.display import Markdown, display  # IPython: present wherever a notebook runs

    display(Markdown(f"## {heading}\n\n" + "\n".join(f"- {s}" for s in sentences if s)))
