"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) and the scores that
judge it: negative log-likelihood, Brier score, expected calibration error (metrics.py's).

One number T divides every logit; it leaves each prediction (the argmax) unchanged and only makes
the confidence honest. T is fitted on images the run never trained on and the test set never sees:
the run's validation split, or, for a run without one (val_size 0) that trained on a seeded subset,
the training images left out of that subset (`held_out_images` says which, or that none exist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core import data as D
from ..core import metrics as M
from ..core.config import TrainConfig
from ..errors import ConfigError

# T is searched on log T within these bounds: beyond them the fit says more about the data than the model.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true class (the cross-entropy), after dividing the logits by T."""
    return F.cross_entropy(logits.double() / temperature, labels).item()


def brier(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Multi-class Brier score: the mean over images of the squared distance between the probability vector
    and the one-hot label (0 is perfect, 2 the worst)."""
    probs = (logits.double() / temperature).softmax(1)
    onehot = F.one_hot(labels, probs.shape[1]).double()
    return ((probs - onehot) ** 2).sum(1).mean().item()


def ece(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, n_bins: int = 15) -> float:
    return M.expected_calibration_error(M.calibration_bins(logits.double() / temperature, labels, n_bins))


def calibration_scores(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, n_bins: int = 15) -> dict:
    """Accuracy, NLL, Brier score and ECE of the logits divided by T."""
    return {
        "accuracy": M.accuracy(logits, labels),
        "nll": nll(logits, labels, temperature),
        "brier": brier(logits, labels, temperature),
        "ece": ece(logits, labels, temperature, n_bins),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T that minimises the NLL of logits / T: Brent's bounded search on log T in
    [MIN_TEMPERATURE, MAX_TEMPERATURE] (scipy's minimize_scalar).

    The NLL is convex in 1/T (a log-sum-exp of lines minus a line), so along log T it has one minimum,
    which a bracketing search finds with no learning rate to tune and no start to diverge from.
    """
    from scipy import optimize

    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ConfigError(
            f"fit_temperature needs logits (N, C) and N labels with N > 0, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    logits = logits.double()
    result = optimize.minimize_scalar(
        lambda log_t: F.cross_entropy(logits / math.exp(log_t), labels).item(),
        method="bounded",
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        options={"xatol": 1e-6},
    )
    return math.exp(result.x)


# ----------------------------------------------------------------------------- which images may fit T


@dataclass
class HeldOut:
    images: torch.Tensor
    labels: torch.Tensor
    source: str  # what they are, in words for a notebook


def held_out_images(dataset: D.Cifar10, config: TrainConfig) -> HeldOut | None:
    """Training images the run did not train on, from its config alone: its validation split when it has
    one; else, when it trained on a seeded subset, the training images outside that subset; else None
    (the run saw every training image, and the test set must not choose anything)."""
    train_idx, val_idx = D.split_indices(dataset, config.val_size, config.train_subset)
    if len(val_idx):
        return HeldOut(
            dataset.train_images[val_idx],
            dataset.train_labels[val_idx],
            f"the run's validation split ({len(val_idx):,} images)",
        )
    unused = torch.ones(len(dataset.train_labels), dtype=torch.bool)
    unused[train_idx] = False
    if not unused.any():
        return None
    idx = torch.nonzero(unused).flatten()
    return HeldOut(
        dataset.train_images[idx],
        dataset.train_labels[idx],
        f"the {len(idx):,} training images outside the run's {len(train_idx):,}-image training subset (val_size 0)",
    )
