"""The sentences notebook 03 concludes with, written from a run's test predictions (no number typed by hand).

Each function takes what metrics.py computed and returns plain sentences: which classes the model
finds hardest, which confusions dominate, and whether its confidence can be taken at face value.
"""

from __future__ import annotations

import math

import torch

from ..core import metrics as M

# An ECE below this reads as "well calibrated": about the sampling noise of ECE itself on a few thousand images.
WELL_CALIBRATED_ECE = 0.02


def weakest_classes_sentence(confusion: torch.Tensor, classes, k: int = 2) -> str:
    """The `k` classes with the lowest recall, and the one with the highest, for contrast."""
    report = M.per_class_report(confusion)
    recall = report["recall"]
    order = torch.argsort(recall).tolist()
    weak = [f"{classes[i]} (recall {recall[i]:.2f}, precision {report['precision'][i]:.2f})" for i in order[:k]]
    best = order[-1]
    return (
        f"The weakest classes are {' and '.join(weak)}; the strongest is {classes[best]} (recall {recall[best]:.2f})."
    )


def confusion_sentence(confusion: torch.Tensor, classes, k: int = 3) -> str:
    """The most frequent confusions, as shares of the true class, and how much of all errors they make up."""
    pairs = M.most_confused(confusion, k=k)
    if not pairs:
        return "No test image was misclassified."
    errors = int(confusion.sum() - confusion.diag().sum())
    named = [f"{100 * share:.0f}% of {classes[t]} images are called {classes[p]}" for t, p, _, share in pairs]
    covered = sum(n for _, _, n, _ in pairs)
    return (
        f"The most frequent confusions: {'; '.join(named)}. These {len(pairs)} pairs make up "
        f"{100 * covered / errors:.0f}% of the {errors:,} errors."
    )


def calibration_sentence(bins: dict[str, torch.Tensor]) -> str:
    """A verdict: well calibrated, over-confident or under-confident, from the count-weighted confidence gap."""
    ece = M.expected_calibration_error(bins)
    count = bins["count"].double()
    filled = count > 0
    gap = (bins["confidence"][filled] - bins["accuracy"][filled]) * count[filled]  # > 0: more confident than right
    mean_gap = float(gap.sum() / count.sum()) if count.sum() > 0 else math.nan
    over = int(((bins["confidence"] > bins["accuracy"]) & filled).sum())
    direction = "over-confident" if mean_gap > 0 else "under-confident"
    verdict = (
        "well calibrated"
        if ece < WELL_CALIBRATED_ECE
        else f"{direction}: its mean confidence is {100 * abs(mean_gap):.1f} points "
        f"{'above' if mean_gap > 0 else 'below'} its accuracy"
    )
    return (
        f"Calibration: ECE {100 * ece:.2f}%, so the model is {verdict} (confidence exceeds accuracy in {over} of "
        f"the {int(filled.sum())} filled bins). Notebook 06 fits a temperature on the validation split to correct it."
    )


def replay_sentence(metrics: dict | None, made_in: str, evaluated_in: str, accuracy: float, images: int) -> str | None:
    """Where this machine evaluated a run in another precision than the one it was made in (a bf16 record
    on a CPU without bf16, see inference.replay_precision), the accuracy the run's own record holds: the report
    shows both numbers, and they differ by rounding only."""
    metrics = metrics or {}
    recorded = metrics.get("test_accuracy")
    if made_in == evaluated_in or recorded is None or metrics.get("test_images") != images:
        return None
    change = 100 * (accuracy - recorded)
    return (
        f"Evaluated here in {evaluated_in}; the run's record, evaluated in {made_in} where it was made, holds "
        f"{100 * recorded:.2f}% on the same images ({change:+.2f} points: the same weights, rounded differently)."
    )


def test_findings(
    confusion: torch.Tensor, classes, bins: dict[str, torch.Tensor], replayed: str | None = None
) -> list[str]:
    """Notebook 03's conclusions about one run's test predictions; `replayed` from replay_sentence."""
    accuracy = float(confusion.diag().sum() / confusion.sum())
    headline = f"Test accuracy {100 * accuracy:.2f}% on {int(confusion.sum()):,} images."
    return [
        f"{headline} {replayed}" if replayed else headline,
        weakest_classes_sentence(confusion, classes),
        confusion_sentence(confusion, classes),
        calibration_sentence(bins),
    ]
