"""Numbers about predictions and about the images themselves: accuracy, confusion matrix,
per-class precision / recall / F1, the most-confused class pairs, calibration, pixel statistics.

Pure torch: every function takes tensors (logits, labels, uint8 images) and returns tensors or
plain Python values, so the notebooks, the report and the tests share one implementation.
"""

from __future__ import annotations

import torch


def _as_predictions(outputs: torch.Tensor) -> torch.Tensor:
    """Class indices from either predictions (N,) or logits / probabilities (N, C)."""
    return outputs.argmax(1) if outputs.ndim == 2 else outputs


def accuracy(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of correct predictions; `outputs` are class indices (N,) or scores (N, C)."""
    if len(labels) == 0:
        return float("nan")
    return (_as_predictions(outputs) == labels).double().mean().item()


def confusion_matrix(labels: torch.Tensor, outputs: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(C, C) counts: row = true class, column = predicted class."""
    preds = _as_predictions(outputs)
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_report(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall, F1 and support of every class, from a confusion matrix.

    A class that is never predicted has precision 0 (and a class with no images recall 0),
    so that F1 is always defined; sklearn's `zero_division=0` does the same.
    """
    confusion = confusion.double()
    true_pos = confusion.diag()
    predicted = confusion.sum(0)
    support = confusion.sum(1)
    precision = torch.where(predicted > 0, true_pos / predicted.clamp(min=1), torch.zeros_like(true_pos))
    recall = torch.where(support > 0, true_pos / support.clamp(min=1), torch.zeros_like(true_pos))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), torch.zeros_like(denom))
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.long()}


def most_confused(confusion: torch.Tensor, k: int = 5) -> list[tuple[int, int, int, float]]:
    """The `k` largest off-diagonal cells as (true, predicted, count, share of the true class).

    Ties are broken by class index, so the order is deterministic.
    """
    c = confusion.shape[0]
    off = confusion.clone().long()
    off.fill_diagonal_(0)
    support = confusion.sum(1)
    cells = [(int(off[t, p]), t, p) for t in range(c) for p in range(c) if t != p and off[t, p] > 0]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(t, p, n, n / int(support[t])) for n, t, p in cells[:k]]


def top_mistakes(logits: torch.Tensor, labels: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Indices of the `k` wrong predictions made with the highest confidence, most confident first."""
    probs = logits.softmax(1)
    confidence, preds = probs.max(1)
    wrong = torch.nonzero(preds != labels).flatten()
    order = torch.argsort(confidence[wrong], descending=True, stable=True)
    return wrong[order[:k]]


# ----------------------------------------------------------------------------- calibration


def calibration_bins(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, torch.Tensor]:
    """Reliability-diagram data: equal-width confidence bins (lo, hi] over [0, 1].

    Returns the bin edges (n_bins + 1), and per bin the number of predictions, their mean
    confidence (max softmax probability) and their accuracy; empty bins hold NaN.
    """
    if n_bins <= 0:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    probs = logits.double().softmax(1)
    confidence, preds = probs.max(1)
    correct = (preds == labels).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bucketize(right=False) puts x in bin i when edges[i-1] < x <= edges[i]; shift to 0-based.
    index = (torch.bucketize(confidence, edges) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins)
    safe = count.clamp(min=1).double()
    mean_conf = torch.bincount(index, weights=confidence, minlength=n_bins) / safe
    mean_acc = torch.bincount(index, weights=correct, minlength=n_bins) / safe
    empty = count == 0
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return {
        "edges": edges,
        "count": count,
        "confidence": torch.where(empty, nan, mean_conf),
        "accuracy": torch.where(empty, nan, mean_acc),
    }


def expected_calibration_error(bins: dict[str, torch.Tensor]) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over the bins (Guo et al., 2017)."""
    count = bins["count"].double()
    total = count.sum()
    if total == 0:
        return float("nan")
    gap = (bins["accuracy"] - bins["confidence"]).abs().nan_to_num(0.0)
    return float((count * gap).sum() / total)


# ----------------------------------------------------------------------------- the images themselves


def class_counts(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return torch.bincount(labels.long(), minlength=num_classes)


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """(3, 256) counts of every uint8 value in each colour channel of (N, 3, H, W) images."""
    if images.dtype != torch.uint8:
        raise TypeError(f"channel_histograms expects uint8 images, got {images.dtype}")
    # bincount reads uint8 directly: 5x faster than converting 46M values to int64 first.
    return torch.stack([torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(images.shape[1])])


def histogram_stats(histograms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std from (C, 256) value counts, in float64.

    The same numbers as `data.channel_stats` on the images the counts came from, from 768 values
    instead of a float64 copy of every pixel.
    """
    counts = histograms.double()
    values = torch.arange(counts.shape[1], dtype=torch.float64)
    n = counts.sum(1)
    mean = (counts * values).sum(1) / n
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(1) / (n - 1)
    return mean, var.sqrt()


def class_mean_images(images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(C, 3, H, W) float64 mean image of each class on the 0-255 scale (zeros for an absent class)."""
    counts = class_counts(labels, num_classes)
    # Sums of uint8 pixels are whole numbers, exact in float32 while below 2**24 (65,793 images of a
    # class); float32 halves the memory traffic of the one pass over the images.
    dtype = torch.float32 if int(counts.max()) * 255 < 2**24 else torch.float64
    flat = images.reshape(len(images), -1)
    sums = torch.zeros((num_classes, flat.shape[1]), dtype=dtype)
    for start in range(0, len(flat), 5000):  # in chunks: a float copy of 5000 images at a time
        sums.index_add_(0, labels[start : start + 5000].long(), flat[start : start + 5000].to(dtype))
    means = sums.double() / counts.clamp(min=1).double()[:, None]
    return means.view(num_classes, *images.shape[1:])


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of logits (N, C) against labels (N,)."""
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(1) == labels).float().mean().item()


def split_counts(split, test_labels, num_classes: int = 10) -> dict:
    """{split name: (C,) image counts per class} for the training, validation and test images."""
    return {
        "train": class_counts(split.train_labels, num_classes),
        "validation": class_counts(split.val_labels, num_classes),
        "test": class_counts(test_labels, num_classes),
    }


def analysis_summary(logits, labels, classes, n_bins: int = 15) -> dict:
    """What notebook 03 records about a run's test predictions (saved as the run's analysis.json)."""
    confusion = confusion_matrix(labels, logits, len(classes))
    report = per_class_report(confusion)
    loss = loss_and_accuracy(logits, labels)[0] if len(labels) else float("nan")
    return {
        "test_images": len(labels),
        "test_accuracy": accuracy(logits, labels),
        "test_loss": loss,
        "ece": expected_calibration_error(calibration_bins(logits, labels, n_bins)),
        "calibration_bins": n_bins,
        "per_class": {
            name: {k: float(report[k][i]) for k in ("precision", "recall", "f1")} for i, name in enumerate(classes)
        },
        "confusion": confusion.tolist(),
    }
