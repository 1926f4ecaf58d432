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

