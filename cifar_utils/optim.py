"""How parameters move: parameter groups, the optimizers, the learning-rate schedule, weight averaging."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import AVERAGING, TrainConfig


def param_groups(config: TrainConfig, model: nn.Module) -> list[dict]:
    """One group, or with `bn_bias_lr_scale`/`lr_per_1024` two: weights and 1-D parameters (biases).

    A group's "lr_scale" multiplies the scheduled lr in the loop. Weight decay is divided by it,
    so that every group decays by the same lr * weight_decay per step: the biases learn faster
    without being pulled to zero faster.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.bn_bias_lr_scale == 1.0 and not config.lr_per_1024:
        return [{"params": params}]
    batch_scale = config.batch_size / 1024 if config.lr_per_1024 else 1.0
    weights = [p for p in params if p.ndim > 1]
    biases = [p for p in params if p.ndim <= 1]
    groups = [{"params": weights, "lr_scale": batch_scale, "weight_decay": config.weight_decay},
              {"params": biases, "lr_scale": batch_scale * config.bn_bias_lr_scale,
               "weight_decay": config.weight_decay / config.bn_bias_lr_scale}]
    return [g for g in groups if g["params"]]


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(config, model)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning-rate multiplier at `step`; a pure function of the step, so resuming needs no state."""
    warmup = int(config.warmup_epochs * total_steps / config.epochs + config.warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    if config.schedule == "onecycle":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- weight averaging


class WeightAverager:
    """An exponential moving average of the model's float tensors (parameters and BN statistics).

    Every `every` steps: avg <- avg + (1 - d) * (w - avg), with d = decay * progress**3 so that the
    average follows the weights closely early (when they move fast) and smooths heavily late.
    "lookahead" then copies the average back into the model (the averaged weights keep training);
    "ema" leaves the model alone until `finalize`. Its state is a list of tensors, so it fits a
    weights_only checkpoint.
    """

    def __init__(self, model: nn.Module, mode: str = "lookahead", decay: float = 0.95 ** 5, every: int = 5):
        if mode not in AVERAGING[1:]:
            raise ValueError(f"unknown averaging {mode!r}; choose one of: {', '.join(AVERAGING[1:])}")
        self.mode, self.decay, self.every = mode, decay, every
        self.average = [t.detach().clone() for t in self._tensors(model)]

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [t for t in model.state_dict().values() if t.is_floating_point()]

    def decay_at(self, step: int, total_steps: int) -> float:
        return self.decay * (step / max(1, total_steps)) ** 3

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for avg, live in zip(self.average, self._tensors(model)):
            avg.lerp_(live, 1.0 - decay)
            if self.mode == "lookahead":
                live.copy_(avg)

    def step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Call after optimizer step number `step` (1-based) of `total_steps`."""
        if step % self.every == 0:
            self.update(model, self.decay_at(step, total_steps))

    @torch.no_grad()
    def finalize(self, model: nn.Module) -> None:
        """Put the average into the model (idempotent, so a resumed finished run gives the same model)."""
        for avg, live in zip(self.average, self._tensors(model)):
            live.copy_(avg)

    def state_dict(self) -> dict:
        return {"mode": self.mode, "decay": self.decay, "every": self.every, "average": list(self.average)}

    def load_state_dict(self, state: dict) -> None:
        if len(state["average"]) != len(self.average):
            raise ValueError("weight-average state does not match the model")
        self.mode, self.decay, self.every = state["mode"], state["decay"], state["every"]
        for avg, saved in zip(self.average, state["average"]):
            avg.copy_(saved)
