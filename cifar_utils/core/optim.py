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
    groups = [
        {"params": weights, "lr_scale": batch_scale, "weight_decay": config.weight_decay},
        {
            "params": biases,
            "lr_scale": batch_scale * config.bn_bias_lr_scale,
            "weight_decay": config.weight_decay / config.bn_bias_lr_scale,
        },
    ]
    return [g for g in groups if g["params"]]


def muon_groups(config: TrainConfig, model: nn.Module) -> list[dict]:
    """The fast recipe's groups: conv filters (Muon), the head, the whitening bias (trained only for the
    first `whiten_bias_epochs`) and the other biases.

    Muon's step does not depend on the loss's scale, SGD's does: the SGD groups' lrs (lr x their
    scale) are per image of the batch, as for a summed loss, so the recipe holds at any batch size;
    each decays by lr x batch_size x weight_decay per step, as airbench94_muon's does.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    filters = [p for _, p in named if p.ndim == 4]
    head = [p for _, p in named if p.ndim == 2]
    whiten_bias = [p for n, p in named if p.ndim == 1 and n.endswith("whiten.bias")]
    biases = [p for n, p in named if p.ndim == 1 and not n.endswith("whiten.bias")]
    per_image = config.batch_size  # the batch-mean loss's gradient is 1/batch_size of the summed one
    bias_group = {
        "lr_scale": config.bn_bias_lr_scale * per_image,
        "weight_decay": config.weight_decay / config.bn_bias_lr_scale,
    }
    groups = [
        {"params": filters, "muon": True},
        {
            "params": head,
            "lr_scale": config.head_lr_scale * per_image,
            "weight_decay": config.weight_decay / config.head_lr_scale,
        },
        {"params": biases, **bias_group},
    ]
    if whiten_bias:
        until = {"until_fraction": config.whiten_bias_epochs / config.epochs} if config.whiten_bias_epochs else {}
        groups.append({"params": whiten_bias, **bias_group, **until})
    return [g for g in groups if g["params"]]


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "muon":
        ns_dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32  # bf16 only where it is native
        return MuonSGD(
            muon_groups(config, model),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            muon_momentum=config.muon_momentum,
            ns_dtype=ns_dtype,
        )
    groups = param_groups(config, model)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
    )


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


def set_learning_rates(config: TrainConfig, optimizer: torch.optim.Optimizer, step: int, total_steps: int) -> float:
    """Give every group its lr for `step`: the schedule times the group's "lr_scale"; a group with an
    "until_fraction" instead decays linearly to zero at that share of the steps (and stays there)."""
    lr = config.lr * lr_factor(config, step, total_steps)
    for group in optimizer.param_groups:
        if "until_fraction" in group:
            until = max(1, math.ceil(group["until_fraction"] * total_steps))
            group["lr"] = config.lr * max(0.0, 1.0 - step / until) * group.get("lr_scale", 1.0)
        else:
            group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


# ----------------------------------------------------------------------------- weight averaging


class WeightAverager:
    """An exponential moving average of the model's float tensors (parameters and BN statistics).

    Every `every` steps: avg <- avg + (1 - d) * (w - avg), with d = decay * progress**3 so that the
    average follows the weights closely early (when they move fast) and smooths heavily late.
    "lookahead" then copies the average back into the model (the averaged weights keep training);
    "ema" leaves the model alone until `finalize`. Its state is a list of tensors, so it fits a
    weights_only checkpoint.
    """

    def __init__(self, model: nn.Module, mode: str = "lookahead", decay: float = 0.95**5, every: int = 5):
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


# ----------------------------------------------------------------------------- Muon

# The quintic Newton-Schulz coefficients published with Muon (K. Jordan, 2024): they push small
# singular values up fast, at the price of not converging exactly to 1 (about 0.7 to 1.2 after
# 3 steps), which does not hurt training.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: torch.Tensor, steps: int = 3, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximately U V^T for matrix = U S V^T (rows: output channels), by Newton-Schulz iterations in `dtype`."""
    a, b, c = NEWTON_SCHULZ
    x = matrix.to(dtype)
    x = x / (x.norm() + 1e-7)  # the largest singular value at most 1, where the iteration converges
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T  # iterate on the smaller Gram matrix
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(matrix.dtype)


class MuonSGD(torch.optim.Optimizer):
    """Muon for the conv filters (groups with "muon": True), Nesterov SGD for every other parameter.

    Muon: Nesterov momentum on the filter's gradient, the update orthogonalised (all its directions
    move at the same rate, so rare features learn as fast as common ones), and the filter rescaled to
    norm sqrt(out_channels) before each step, which fixes its scale so that weight decay is not needed.
    SGD follows torch.optim.SGD exactly (the first momentum buffer is the first gradient). One
    optimizer for both, so the loop, the schedule and the checkpoint handle one object.
    """

    def __init__(
        self,
        groups: list[dict],
        lr: float,
        momentum: float,
        nesterov: bool,
        muon_momentum: float,
        ns_dtype: torch.dtype = torch.bfloat16,
    ):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=0.0, muon=False)
        self.muon_momentum, self.ns_dtype = muon_momentum, ns_dtype
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    (self._muon_step if group["muon"] else self._sgd_step)(p, group)

    def _muon_step(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p.grad)
        buf = state["momentum_buffer"].mul_(self.muon_momentum).add_(p.grad)
        direction = p.grad.add(buf, alpha=self.muon_momentum) if group["nesterov"] else buf
        p.mul_(len(p) ** 0.5 / p.norm())
        update = orthogonalize(direction.reshape(len(p), -1), dtype=self.ns_dtype).view_as(p)
        p.add_(update, alpha=-group["lr"])

    def _sgd_step(self, p: torch.Tensor, group: dict) -> None:
        grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = grad.clone()
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
        buf = state["momentum_buffer"]
        p.add_(grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf, alpha=-group["lr"])
