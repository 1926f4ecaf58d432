"""Named training recipes: a TrainConfig each, which command-line flags may then override."""
from __future__ import annotations

from .errors import ConfigError
from .training import TrainConfig

RECIPES: dict[str, dict] = {
    # The seed project: Adam at 1e-3, cross-entropy, 10 epochs, no augmentation, 45k/5k split.
    "seed": {},
}


def recipe_config(name: str = "seed", **overrides) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPES))}")
    values = {**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(values).validate()
