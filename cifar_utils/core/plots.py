"""Figures: learning curves, confusion heatmap, image grids, reliability diagrams.

Each function returns a matplotlib Figure; saving is the caller's choice (`atomic.save_figure`).
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_curves(history: list[dict], title: str | None = None):
    """Training vs validation accuracy and loss per epoch, like the seed's output.png."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], "o-", label="Training accuracy")
    ax_acc.plot(epochs, [100 * h["val_acc"] for h in history], "o-", label="Validation accuracy")
    ax_acc.set(xlabel="Epoch", ylabel="Accuracy (%)", title="Accuracy")
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="Training loss")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="Validation loss")
    ax_loss.set(xlabel="Epoch", ylabel="Cross-entropy loss", title="Loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if note := curves_note(history):
        add_caption(fig, note)
    return fig


def curves_note(history: list[dict]) -> str | None:
    """Why training accuracy lies below validation accuracy, when it does, naming the epochs."""
    below = [h["epoch"] for h in history if h["train_acc"] < h["val_acc"]]
    if not below:
        return None
    span = f"epoch {below[0]}" if len(below) == 1 else f"epochs {', '.join(map(str, below))}"
    return (
        f"Training accuracy lies below validation in {span}: it is the running mean over the epoch's batches, "
        f"taken while the weights still improve and with dropout and augmentation on; validation is measured "
        f"once, at the end of the epoch, in evaluation mode."
    )


def add_caption(fig, text: str, width: int = 130) -> None:
    """A caption under the figure: the space below the axes grows to hold the wrapped text."""
    lines = textwrap.wrap(text, width)
    height = fig.get_figheight()
    extra = 0.22 * len(lines) + 0.1  # inches of caption
    fig.set_figheight(height + extra)
    fig.subplots_adjust(
        bottom=(fig.subplotpars.bottom * height + extra) / (height + extra),
        top=1 - (1 - fig.subplotpars.top) * height / (height + extra),
    )
    fig.text(0.01, 0.01, "\n".join(lines), ha="left", va="bottom", fontsize=9, color="#444")


# ----------------------------------------------------------------------------- the dataset


def show_image(ax, image, title: str | None = None, fontsize: int = 8) -> None:
    """Draw one (3, H, W) image, uint8 or float on the 0-255 scale, without axes."""
    pixels = image.detach().cpu().float().clamp(0, 255).permute(1, 2, 0).numpy() / 255.0
    ax.imshow(pixels, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def plot_class_balance(counts: dict, classes):
    """Grouped bars: the number of images of each class in each split ({split name: (C,) counts})."""

    fig, ax = plt.subplots(figsize=(11, 4))
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(counts))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(x + (i - (len(counts) - 1) / 2) * width, [int(v) for v in values], width, label=split)
    ax.set_xticks(x, classes, rotation=30)
    ax.set(ylabel="Images", title="Class balance per split")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes: over the bars it hid the last class
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _mosaic(images, rows: int, cols: int, gap: int = 2, top: int = 0):
    """Tile (N, 3, H, W) images row by row into one white (H', W', 3) array in [0, 1].

    One imshow of a mosaic draws in a fraction of the time of one subplot per image. `top`
    leaves extra white rows above every tile (room for a caption).
    """

    h, w = images.shape[-2:]
    cell_h, cell_w = h + gap + top, w + gap
    canvas = np.ones((rows * cell_h + gap, cols * cell_w + gap, 3))
    for k, image in enumerate(images[: rows * cols]):
        r, c = divmod(k, cols)
        y, x = r * cell_h + gap + top, c * cell_w + gap
        canvas[y : y + h, x : x + w] = image.detach().cpu().float().clamp(0, 255).permute(1, 2, 0).numpy() / 255.0
    return canvas


def plot_class_samples(images, labels, classes, per_class: int = 8, seed: int = 0):
    """A grid of `per_class` randomly chosen (seeded) images of every class, one row per class."""

    gen = torch.Generator().manual_seed(seed)
    tiles = torch.full((len(classes) * per_class, *images.shape[1:]), 255, dtype=torch.uint8)
    for c in range(len(classes)):
        members = torch.nonzero(labels == c).flatten()
        chosen = members[torch.randperm(len(members), generator=gen)[:per_class]]
        tiles[c * per_class : c * per_class + len(chosen)] = images[chosen]
    fig, ax = plt.subplots(figsize=(per_class * 0.85 + 1.2, len(classes) * 0.85 + 0.6))
    ax.imshow(_mosaic(tiles, len(classes), per_class), interpolation="nearest")
    cell = images.shape[-2] + 2
    ax.set_yticks([2 + cell * c + (cell - 2) / 2 for c in range(len(classes))], classes)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Sample images per class")
    fig.tight_layout()
    return fig


def plot_channel_histograms(histograms, mean=None, std=None):
    """Pixel-value histograms of the red, green and blue channels from (3, 256) counts."""

    fig, ax = plt.subplots(figsize=(8, 4))
    values = np.arange(256)
    for c, (name, colour) in enumerate(zip(("red", "green", "blue"), ("tab:red", "tab:green", "tab:blue"))):
        counts = histograms[c].double()
        label = name if mean is None else f"{name} (mean {float(mean[c]):.1f}, std {float(std[c]):.1f})"
        ax.plot(values, (counts / counts.sum()).numpy(), color=colour, label=label)
    ax.set(xlabel="Pixel value", ylabel="Share of pixels", title="Pixel values per channel", xlim=(0, 255))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_mean_images(mean_images, classes):
    """The mean image of each class, (C, 3, H, W) on the 0-255 scale."""
    cols = min(5, len(classes))
    rows = -(-len(classes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 2.0), squeeze=False)
    for ax in axes.flat[len(classes) :]:
        ax.axis("off")
    for ax, image, name in zip(axes.flat, mean_images, classes):
        show_image(ax, image, name, fontsize=9)
    fig.suptitle("Mean image of each class")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- predictions


def plot_confusion(confusion, classes, normalize: bool = True, title: str = "Confusion matrix"):
    """Seaborn heatmap; rows are true classes. `normalize` shows each row as shares of that class."""
    import seaborn as sns

    values = confusion.double()
    if normalize:
        values = values / values.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    sns.heatmap(
        values.numpy(),
        annot=True,
        fmt=".2f" if normalize else "d",
        cmap="Blues",
        square=True,
        xticklabels=classes,
        yticklabels=classes,
        cbar_kws={"label": "share of true class" if normalize else "images"},
        ax=ax,
        annot_kws={"fontsize": 7},
    )
    ax.set(xlabel="Predicted class", ylabel="True class", title=title)
    fig.tight_layout()
    return fig


def plot_misclassified(images, labels, preds, confidence, classes, cols: int = 8):
    """A gallery of misclassified images captioned 'true -> predicted (confidence)'."""
    n = len(images)
    if n == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return fig
    cols = min(cols, n)
    rows = -(-n // cols)
    gap, top = 2, 11  # caption room above each 32-pixel image
    h, w = images.shape[-2:]
    fig, ax = plt.subplots(figsize=(cols * 1.45, rows * 1.45 * (h + gap + top) / (w + gap) + 0.4))
    ax.imshow(_mosaic(images, rows, cols, gap=gap, top=top), interpolation="nearest")
    for k in range(n):
        r, c = divmod(k, cols)
        caption = f"{classes[int(labels[k])]}\n-> {classes[int(preds[k])]} ({100 * float(confidence[k]):.0f}%)"
        ax.text(
            c * (w + gap) + gap + w / 2,
            r * (h + gap + top) + gap + top - 1,
            caption,
            ha="center",
            va="bottom",
            fontsize=7,
            linespacing=1.1,
        )
    ax.axis("off")
    ax.set_title("Misclassified test images: true -> predicted (confidence)")
    fig.tight_layout()
    return fig


def plot_reliability(bins: dict, ece: float | None = None):
    """Reliability diagram: accuracy against confidence per bin, with the diagonal of perfect calibration."""
    edges = bins["edges"].numpy()
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    accuracy = bins["accuracy"].nan_to_num(0.0).numpy()
    confidence = bins["confidence"].numpy()
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centres, accuracy, width=width, edgecolor="black", alpha=0.8, label="Accuracy")
    ax.plot(centres, confidence, "o", color="tab:red", markersize=4, label="Mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="Perfect calibration")
    title = "Reliability diagram" + (f" (ECE {100 * ece:.2f}%)" if ece is not None else "")
    ax.set(ylabel="Accuracy", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax_count.bar(centres, bins["count"].numpy(), width=width, edgecolor="black", color="tab:gray")
    ax_count.set(xlabel="Confidence (max softmax probability)", ylabel="Predictions")
    fig.tight_layout()
    return fig
