"""The one vocabulary of a training run: `TrainConfig`, its choices and checks, and the named recipes.

The CLI's training flags, the notebook parameters the report accepts and the experiments' knobs
are all built from `TrainConfig`'s fields, their defaults and the help kept beside them, so a new
knob is added here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..paths import CI_ENV, SMOKE_ENV
from .augment import AUGMENTATIONS
from .models import available_models, check_model_kwargs, model_options

OPTIMIZERS = ("adam", "sgd", "muon")  # muon: Muon for conv filters, Nesterov SGD for the rest
SCHEDULES = ("constant", "onecycle", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
AVERAGING = ("none", "ema", "lookahead")
TTA_MODES = ("none", "mirror", "mirror+translate")


def _knob(default, help: str, kind: str, flag: str | None = None, factory=None):
    """A config field with what the CLI and the notebooks need to offer it: help, value kind, flag name."""
    metadata = {"help": help, "kind": kind, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that decides a run's result. Defaults are the seed project's recipe."""

    model: str = _knob("seed_cnn", "network architecture", "model")
    model_kwargs: dict = _knob(
        None, "the network's own options as JSON, e.g. '{\"widths\": [32, 64, 64]}'", "json", factory=dict
    )
    optimizer: str = _knob("adam", "optimizer", "choice")
    lr: float = _knob(1e-3, "learning rate", "positive_float")
    momentum: float = _knob(0.9, "SGD momentum", "non_negative_float")
    nesterov: bool = _knob(False, "Nesterov momentum (SGD)", "bool")
    weight_decay: float = _knob(0.0, "weight decay", "non_negative_float")
    epochs: int = _knob(10, "epochs", "positive_int")
    batch_size: int = _knob(128, "training batch size", "positive_int")
    label_smoothing: float = _knob(0.0, "label smoothing of the cross-entropy, in [0, 1)", "non_negative_float")
    augment: str = _knob("none", "training augmentation", "choice")
    schedule: str = _knob("constant", "learning-rate schedule", "choice")
    warmup_epochs: float = _knob(0.0, "linear warm-up, in epochs", "non_negative_float")
    seed: int = _knob(0, "seed of the initialisation, data order and augmentation", "int")
    val_size: int = _knob(5000, "validation images held out of the 50,000 (0: train on all)", "int")
    train_subset: int | None = _knob(
        None, "train on only this many images (smoke runs)", "positive_int", flag="--subset"
    )
    device: str = _knob("auto", "where to train: auto is CUDA when present", "choice")
    precision: str = _knob(
        "auto", "auto: bf16 on CUDA and on CPUs with native bf16, else fp32 (a run records the one it used)", "choice"
    )
    channels_last: bool = _knob(True, "channels-last memory layout", "bool")
    eval_batch_size: int = _knob(1000, "batch size of evaluation", "positive_int")
    # Fast-recipe knobs; their defaults leave the seed recipe unchanged.
    warmup_fraction: float = _knob(
        0.0, "warm-up as a share of all steps (instead of warmup_epochs)", "non_negative_float"
    )
    bn_bias_lr_scale: float = _knob(
        1.0, "lr multiplier for 1-D parameters (BatchNorm and whitening biases)", "positive_float"
    )
    lr_per_1024: bool = _knob(
        False, "lr is per 1024 images: scales with batch_size/1024, as does the per-step decay", "bool"
    )
    head_lr_scale: float = _knob(
        1.0, "lr multiplier for the linear head (muon: per image of the batch)", "positive_float"
    )
    muon_momentum: float = _knob(0.6, "Nesterov momentum of Muon's filter updates", "non_negative_float")
    whiten_bias_epochs: float = _knob(
        0.0,
        "train the whitening bias only this many first epochs, its lr decaying "
        "to zero (muon; 0: like the other biases)",
        "non_negative_float",
    )
    averaging: str = _knob("none", "weight averaging", "choice")
    averaging_decay: float = _knob(0.95**5, "decay of the weight average, in [0, 1)", "non_negative_float")
    averaging_every: int = _knob(5, "update the weight average every this many steps", "positive_int")
    tta: str = _knob("none", "test-time augmentation of the final evaluation", "choice")
    tta_share: float = _knob(
        1.0,
        "share of the evaluated images, least confident first, that get the test-time "
        "augmentation; the rest keep their plain prediction (1: all)",
        "positive_float",
    )

    def validate(self) -> "TrainConfig":
        if self.model not in available_models():
            raise ConfigError(f"unknown model {self.model!r}; choose one of: {', '.join(available_models())}")
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a JSON object (a dict), got {self.model_kwargs!r}")
        check_model_kwargs(self.model, self.model_kwargs)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr (learning rate) must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be zero or positive, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.train_subset is not None and self.train_subset <= 0:
            raise ConfigError(f"train_subset must be positive when given, got {self.train_subset!r}")
        if not 0 <= self.val_size < 50000:
            raise ConfigError(f"val_size must be between 0 and 49999, got {self.val_size!r}")
        if not 0 <= self.warmup_fraction < 1 or (self.warmup_fraction and self.warmup_epochs):
            raise ConfigError(
                f"warmup_fraction must be in [0, 1) and not combined with warmup_epochs, "
                f"got {self.warmup_fraction!r} (warmup_epochs {self.warmup_epochs!r})"
            )
        if not self.bn_bias_lr_scale > 0:
            raise ConfigError(f"bn_bias_lr_scale must be positive, got {self.bn_bias_lr_scale!r}")
        if not (0 <= self.averaging_decay < 1 and isinstance(self.averaging_every, int) and self.averaging_every > 0):
            raise ConfigError(
                f"averaging_decay must be in [0, 1) and averaging_every a positive whole number, "
                f"got {self.averaging_decay!r} and {self.averaging_every!r}"
            )
        if not 0 < self.tta_share <= 1:
            raise ConfigError(f"tta_share must be in (0, 1], got {self.tta_share!r}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**values)


CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "precision": PRECISIONS,
    "device": DEVICES,
    "augment": AUGMENTATIONS.keys(),  # a live view: augment.register_augmentation adds to it
    "averaging": AVERAGING,
    "tta": TTA_MODES,
}
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def parameter_name(field_name: str) -> str:
    """The notebook parameter of a config field: its name in capitals (lr -> LR)."""
    return field_name.upper()


# ----------------------------------------------------------------------------- named recipes

RECIPES: dict[str, dict] = {
    # The seed project: Adam at 1e-3, cross-entropy, 10 epochs, no augmentation, 45k/5k split.
    "seed": {},
    # airbench94_muon-style: ~94% test accuracy in 8 epochs on all 50k images (val_size 0). Muon moves the
    # conv filters; Nesterov SGD the biases and the head, with lrs per image of the batch (see
    # optim.muon_groups): the published 0.053 and 0.67 for a summed loss, and a decay of 2e-6 per image.
    "fast": {
        "model": "fast",
        "model_kwargs": {"head_scale": 1 / 256, "head_init_std": 1.0},
        "optimizer": "muon",
        "lr": 0.24,
        "muon_momentum": 0.6,
        "momentum": 0.85,
        "nesterov": True,
        "bn_bias_lr_scale": 0.053 / 0.24,
        "head_lr_scale": 0.67 / 0.24,
        "weight_decay": 2e-6 / 0.24,
        "whiten_bias_epochs": 3,  # the whitening bias settles early; freezing it later steadies the rest
        "batch_size": 2000,
        "epochs": 8,
        "label_smoothing": 0.2,
        "schedule": "onecycle",
        "warmup_fraction": 0.0,  # linear decay to zero, no warm-up
        "augment": "alt_flip+translate2",
        "tta": "mirror+translate",
        "val_size": 0,
        # The views go to the least confident quarter of the images: on a 5,000-image validation split
        # (bench/tta_share.py) they changed no prediction outside it, at a third of the evaluation time.
        "tta_share": 0.25,
    },
    # The older airbench94 design (arXiv 2404.00498): 10 epochs of Nesterov SGD with Lookahead.
    # Values are for the batch-mean loss; airbench's lr 11.5 and decay 0.0153 per 1024 summed
    # examples at momentum 0.85 convert to lr 1.5 and a per-step decay lr*wd of 2e-3.
    "fast10": {
        "model": "fast",
        "optimizer": "sgd",
        "momentum": 0.85,
        "nesterov": True,
        "lr": 1.5,
        "lr_per_1024": True,  # lr and per-step decay grow with batch_size/1024
        "weight_decay": 2e-3 / 1.5,
        "bn_bias_lr_scale": 64.0,  # BN biases (and the whitening bias) learn 64x faster, same decay per step
        "batch_size": 1024,
        "epochs": 10,
        "label_smoothing": 0.2,
        "schedule": "onecycle",
        "warmup_fraction": 0.2,  # linear up for 20% of the steps, then linear to zero
        "augment": "alt_flip+translate2",
        "averaging": "lookahead",
        "averaging_decay": 0.95**5,
        "averaging_every": 5,
        "tta": "mirror+translate",
    },
}


_log = logging.getLogger(__name__)
_said: set = set()  # the dropped-options lines already logged: one per recipe, model and options in a process


def recipe_config(name: str = "seed", **overrides) -> TrainConfig:
    """The named recipe with `overrides` (config fields; None keeps the recipe's value), checked.

    The recipe's own model_kwargs go only to a model that accepts them (the fast recipe's head_scale means
    nothing to another network): the rest are left out, in one logged line. model_kwargs in `overrides` were
    asked for, so one the model does not accept is a ConfigError (TrainConfig.validate).
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPES))}")
    values = {**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}}
    given = overrides.get("model_kwargs") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"model_kwargs must be a JSON object (a dict), got {given!r}")
    recipe_kwargs = RECIPES[name].get("model_kwargs", {})
    model = values.get("model", TrainConfig.model)
    if model in available_models():  # an unknown model is refused by validate, below
        check_model_kwargs(model, given)  # refused before anything is said about the recipe's
        accepted = model_options(model)
        dropped = sorted(k for k in recipe_kwargs if k not in accepted and k not in given)
        recipe_kwargs = {k: v for k, v in recipe_kwargs.items() if k not in dropped}
        said = (name, model, tuple(dropped))
        if dropped and said not in _said:  # recipe_config runs more than once per run (its name compares with it)
            _said.add(said)
            _log.warning(
                f"recipe {name!r}: model {model!r} does not accept the recipe's {', '.join(dropped)}; "
                f"it trains without {'it' if len(dropped) == 1 else 'them'}"
            )
    values["model_kwargs"] = {**recipe_kwargs, **given}  # widths, say: added to the recipe's own network options
    return TrainConfig.from_dict(values).validate()


# ----------------------------------------------------------------------------- smoke mode and notebook parameters

# Smoke mode: enough to execute every cell in seconds, not to learn anything.
SMOKE_TRAIN = {"epochs": 1, "train_subset": 1000}
SMOKE_TEST_IMAGES = 1000


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() not in ("", "0", "false", "no", "off")


def smoke_default() -> bool:
    """Smoke mode unless told otherwise: $CIFAR_SMOKE if set, else whether $CI is set (as in CI services)."""
    if os.environ.get(SMOKE_ENV) is not None:
        return _truthy(os.environ[SMOKE_ENV])
    return _truthy(os.environ.get(CI_ENV))


def train_parameters() -> dict[str, str]:
    """{notebook parameter: TrainConfig field} for every training knob (LR -> lr)."""
    return {parameter_name(name): name for name in FIELDS}


def train_overrides(namespace: dict) -> dict:
    """The training knobs a notebook's parameters set: {field: value} for each capitalised field name
    in `namespace` (a notebook passes globals()) whose value is not None."""
    return {name: namespace[param] for param, name in train_parameters().items() if namespace.get(param) is not None}


def training_config(recipe: str = "seed", smoke: bool = False, **overrides) -> TrainConfig:
    """The recipe's TrainConfig with the given overrides (None: keep the recipe's); smoke shrinks it."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return recipe_config(recipe, **{**(SMOKE_TRAIN if smoke else {}), **given})
