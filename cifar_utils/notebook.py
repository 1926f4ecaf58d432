"""What the notebooks need besides analysis: their settings (smoke mode, folders, the training config
from their parameters). Committed notebooks are kept clean by nbstripout and paired with a py:percent
text file by jupytext, both run by pre-commit (.pre-commit-config.yaml).

A notebook's parameters cell names every training knob as a capitalised `TrainConfig` field
(`LR` for `lr`); `train_overrides` collects the ones given.
"""
from __future__ import annotations

import dataclasses
import os

from .config import FIELDS, TrainConfig, parameter_name, recipe_config

SMOKE_ENV = "CIFAR_SMOKE"  # "1": notebooks default to smoke mode (tests set it); else $CI decides
# Smoke mode: enough to execute every cell in seconds, not to learn anything.
SMOKE_TRAIN = {"epochs": 1, "train_subset": 1000}
SMOKE_TEST_IMAGES = 1000


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() not in ("", "0", "false", "no", "off")


def smoke_default() -> bool:
    """Smoke mode unless told otherwise: $CIFAR_SMOKE if set, else whether $CI is set (as in CI services)."""
    if os.environ.get(SMOKE_ENV) is not None:
        return _truthy(os.environ[SMOKE_ENV])
    return _truthy(os.environ.get("CI"))


def train_parameters() -> dict[str, str]:
    """{notebook parameter: TrainConfig field} for every training knob (LR -> lr)."""
    return {parameter_name(name): name for name in FIELDS}


def train_overrides(namespace: dict) -> dict:
    """The training knobs a notebook's parameters set: {field: value} for each capitalised field name
    in `namespace` (a notebook passes globals()) whose value is not None."""
    return {name: namespace[param] for param, name in train_parameters().items()
            if namespace.get(param) is not None}


def training_config(recipe: str = "seed", smoke: bool = False, **overrides) -> TrainConfig:
    """The recipe's TrainConfig with the given overrides (None: keep the recipe's); smoke shrinks it."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return recipe_config(recipe, **{**(SMOKE_TRAIN if smoke else {}), **given})


def smoke_dataset(dataset):
    """The dataset with its test set cut to its first SMOKE_TEST_IMAGES images: smoke runs evaluate in seconds."""
    return dataclasses.replace(dataset, test_images=dataset.test_images[:SMOKE_TEST_IMAGES],
                               test_labels=dataset.test_labels[:SMOKE_TEST_IMAGES])



def run_story(record) -> str:
    """One sentence on what this run did in this session, for the notebook to show: trained here, resumed
    after an interruption, or reused from a finished run (with where, when and at which commit it was trained).
    `record` is the RunRecord that training.fit_or_reuse returned."""
    m = record.metrics or {}
    prov = m.get("provenance") or {}
    folder = f"`{record.run_dir}`" if record.run_dir else "memory (no run folder)"
    epochs, config = len(record.history), record.config
    where = (f"on {prov.get('device_name', 'an unrecorded device')} at {config.precision}, commit "
             f"{prov.get('git_commit', 'unknown')}")
    timing = (f"{m['seconds']:.0f} s for training and evaluation ({m.get('images_per_second', 0):.0f} training "
              f"images/s)" if m.get("seconds") is not None else "no recorded time")
    if record.reused:
        return (f"**Reused, not trained:** {folder} already held this configuration finished ({epochs} epochs), "
                f"trained {prov.get('date', 'at an unrecorded date')} {where}, {timing}. "
                f"Set `REUSE = False` (or delete the folder) to train it again.")
    if record.resumed_after is not None:
        return (f"**Resumed:** {folder} held an interrupted run with {record.resumed_after} of {config.epochs} epochs "
                f"finished; epochs {record.resumed_after + 1}–{config.epochs} were trained now {where}. The time covers "
                f"this session only: {timing}.")
    return f"**Trained now:** {epochs} epochs {where}, {timing}; saved in {folder}."
