"""Named training recipes: a TrainConfig each, which command-line flags may then override."""
from __future__ import annotations

from .errors import ConfigError
from .training import TrainConfig

RECIPES: dict[str, dict] = {
    # The seed project: Adam at 1e-3, cross-entropy, 10 epochs, no augmentation, 45k/5k split.
    "seed": {},
    # airbench-style (arXiv 2404.00498): ~94% test accuracy in 10 epochs on all 50k images (val_size=0).
    # Values are for the batch-mean loss; airbench's lr 11.5 and decay 0.0153 per 1024 summed
    # examples at momentum 0.85 convert to lr 1.5 and a per-step decay lr*wd of 2e-3.
    "fast": {
        "model": "fast", "optimizer": "sgd", "momentum": 0.85, "nesterov": True,
        "lr": 1.5, "lr_per_1024": True,  # lr and per-step decay grow with batch_size/1024
        "weight_decay": 2e-3 / 1.5,
        "bn_bias_lr_scale": 64.0,  # BN biases (and the whitening bias) learn 64x faster, same decay per step
        "batch_size": 1024, "epochs": 10, "label_smoothing": 0.2,
        "schedule": "onecycle", "warmup_fraction": 0.2,  # linear up for 20% of the steps, then linear to zero
        "augment": "alt_flip+translate2",
        "averaging": "lookahead", "averaging_decay": 0.95 ** 5, "averaging_every": 5,
        "tta": "mirror+translate",
    },
}


def recipe_config(name: str = "seed", **overrides) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPES))}")
    values = {**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(values).validate()
