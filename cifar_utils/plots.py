"""Figures: learning curves, confusion heatmap, image grids, reliability diagrams.

Each function returns a matplotlib Figure; saving is the caller's choice (`atomic.save_figure`).
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch

from .stats import summarize


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
    return (f"Training accuracy lies below validation in {span}: it is the running mean over the epoch's batches, "
            f"taken while the weights still improve and with dropout and augmentation on; validation is measured "
            f"once, at the end of the epoch, in evaluation mode.")


def add_caption(fig, text: str, width: int = 130) -> None:
    """A caption under the figure: the space below the axes grows to hold the wrapped text."""
    lines = textwrap.wrap(text, width)
    height = fig.get_figheight()
    extra = 0.22 * len(lines) + 0.1  # inches of caption
    fig.set_figheight(height + extra)
    fig.subplots_adjust(bottom=(fig.subplotpars.bottom * height + extra) / (height + extra),
                        top=1 - (1 - fig.subplotpars.top) * height / (height + extra))
    fig.text(0.01, 0.01, "\n".join(lines), ha="left", va="bottom", fontsize=9, color="#444")


# ----------------------------------------------------------------------------- the dataset


def _image(ax, image, title: str | None = None, fontsize: int = 8) -> None:
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
    for ax in axes.flat[len(classes):]:
        ax.axis("off")
    for ax, image, name in zip(axes.flat, mean_images, classes):
        _image(ax, image, name, fontsize=9)
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
    sns.heatmap(values.numpy(), annot=True, fmt=".2f" if normalize else "d", cmap="Blues", square=True,
                xticklabels=classes, yticklabels=classes, cbar_kws={"label": "share of true class" if normalize else "images"},
                ax=ax, annot_kws={"fontsize": 7})
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
        ax.text(c * (w + gap) + gap + w / 2, r * (h + gap + top) + gap + top - 1, caption,
                ha="center", va="bottom", fontsize=7, linespacing=1.1)
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


# ----------------------------------------------------------------------------- experiments


def plot_group_intervals(frame, by: str, metrics=(("val_accuracy", "Validation"), ("test_accuracy", "Test")),
                         confidence: float = 0.95, title: str | None = None):
    """Mean accuracy per value of `by` with t confidence intervals as error bars, each seed a dot."""


    order = list(dict.fromkeys(frame[by]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(order)), 4.2))
    offsets = np.linspace(-0.15, 0.15, len(metrics))
    for (column, label), offset, colour in zip(metrics, offsets, ("tab:blue", "tab:orange", "tab:green")):
        xs = np.arange(len(order)) + offset
        summaries = [summarize(frame.loc[frame[by] == v, column], confidence) for v in order]
        means = np.array([100 * s.mean for s in summaries])
        halves = np.array([100 * s.half_width if s.n > 1 else 0.0 for s in summaries])
        ax.errorbar(xs, means, yerr=halves, fmt="o", capsize=5, color=colour, label=f"{label} (mean, {confidence:.0%} CI)")
        for x, value in zip(xs, order):
            seeds = 100 * frame.loc[frame[by] == value, column].to_numpy(dtype=float)
            ax.scatter(np.full(len(seeds), x + 0.06), seeds, s=10, color=colour, alpha=0.45)
    ax.set_xticks(range(len(order)), [str(v) for v in order], rotation=15)
    ax.set(ylabel="Accuracy (%)", xlabel=by, title=title or f"Accuracy by {by}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_forest(table, reference: str, margin: float | None = None, alpha: float = 0.05, title: str | None = None,
                what: str = "accuracy"):
    """Each arm's difference from `reference` (comparisons.compare_arms's table, in points) with its 95% interval;
    a line at 0 (no difference), the equivalence margin shaded, the arms that differ after Holm in colour."""
    rows = list(table.index)
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.6))
    if margin:
        ax.axvspan(-100 * margin, 100 * margin, color="tab:blue", alpha=0.08, label=f"±{100 * margin:g}-point margin")
    ax.axvline(0, color="black", linewidth=1)
    for y, arm in enumerate(reversed(rows)):
        row = table.loc[arm]
        differs = row["p_holm"] < alpha
        colour = ("tab:green" if row["delta"] > 0 else "tab:red") if differs else "tab:blue" if row["equivalent"] else "0.35"
        low, high = row["ci_low"], row["ci_high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.hlines(y, low, high, color=colour, linewidth=2.2)
        ax.plot(row["delta"], y, "o", color=colour, markersize=7)
    ax.set_yticks(range(len(rows)), [str(r) for r in reversed(rows)])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set(xlabel=f"Δ {what} vs {reference} (points; 95% paired interval)", title=title or f"Each arm against {reference}")
    handles = [plt.Line2D([], [], marker="o", color=c, linestyle="-", label=label) for c, label in (
        ("tab:green", "raises it (Holm p < 0.05)"), ("tab:red", "lowers it (Holm p < 0.05)"),
        ("tab:blue", "equivalent (TOST)"), ("0.35", "not resolvable"))]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_trials(trials, fence: float = 1.5, title: str | None = None):
    """Validation accuracy of each trial of a search (search.trials_table) against its number, and the best so far.

    Pruned trials show their last reported value; failed ones (a diverged loss) sit on the bottom edge. The
    y-axis starts at the lowest value above Tukey's lower fence (first quartile - `fence` x the interquartile
    range), so a few broken trials at chance do not flatten the rest: the values below it are drawn on the
    bottom edge as triangles, with their value beside them.
    """
    fig, ax = plt.subplots(figsize=(8, 4.2))
    done = trials[trials["state"] == "COMPLETE"]
    pruned = trials[trials["state"] == "PRUNED"]
    failed = trials[~trials["state"].isin(["COMPLETE", "PRUNED", "RUNNING", "WAITING"])]
    values = 100 * np.concatenate([done["value"].to_numpy(float), pruned["last_value"].to_numpy(float)])
    values = values[np.isfinite(values)]
    if len(values):
        q1, q3 = np.quantile(values, [0.25, 0.75])
        low, high = float(values[values >= q1 - fence * (q3 - q1)].min()), float(values.max())
        span = max(high - low, 0.5)
        bottom, top = low - 0.15 * span, high + 0.1 * span
    else:
        bottom, top = 0.0, 100.0
    edge = bottom + 0.02 * (top - bottom)
    for part, y, marker, colour, label in ((done, done["value"], "o", "tab:blue", "complete"),
                                           (pruned, pruned["last_value"], "s", "tab:orange", "pruned (last value)")):
        y = 100 * y.to_numpy(float)
        inside = np.isfinite(y) & (y >= bottom)
        ax.scatter(part.index[inside], y[inside], marker=marker, color=colour, label=label, zorder=3)
        below = np.isfinite(y) & (y < bottom)
        if below.any():
            ax.scatter(part.index[below], np.full(below.sum(), edge), marker="v", color=colour, zorder=3,
                       label=f"{label}, below the axis")
            for x, v in zip(part.index[below], y[below]):
                ax.annotate(f"{v:.1f}", (x, edge), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    if len(failed):
        ax.scatter(failed.index, np.full(len(failed), edge), marker="x", color="tab:red", zorder=3,
                   label="failed (diverged or stopped)")
    if len(done):
        best = 100 * done["value"].astype(float).cummax()
        x = np.append(done.index.to_numpy(), trials.index.max())  # the best so far holds to the last trial
        ax.step(x, np.append(best.to_numpy(), best.iloc[-1]), where="post", color="0.3", linewidth=1, label="best so far")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylim(bottom, top)
    ax.set(xlabel="trial", ylabel="validation accuracy (%)", title=title or "Search: each trial's validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_pareto(table, title: str | None = None, machine: str | None = None):
    """Test accuracy against median training seconds, one line per architecture through its rungs (epochs
    annotated, seed SD as error bars), the Pareto-front rungs ringed; `table` as architectures.rung_table gives it."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, group in table.groupby("architecture", sort=False):
        group = group.sort_values("median train s")
        ax.errorbar(group["median train s"], group["test accuracy %"], yerr=group["std"].fillna(0), fmt="o-",
                    capsize=3, label=name)
        for _, row in group.iterrows():
            ax.annotate(f"{int(row['epochs'])} ep", (row["median train s"], row["test accuracy %"]),
                        textcoords="offset points", xytext=(4, -12), fontsize=8, color="#555")
    front = table[table["Pareto"]]
    ax.scatter(front["median train s"], front["test accuracy %"], s=180, facecolors="none", edgecolors="black",
               linewidths=1.2, label="Pareto front", zorder=3)
    ax.set_xscale("log")
    ax.set(xlabel="Training seconds (median over seeds, log scale)", ylabel="Test accuracy (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # outside: no rung is ever hidden
    ax.margins(x=0.08, y=0.08)  # room for the last rung's label
    fig.tight_layout()
    if machine:
        add_caption(fig, f"Measured on {machine}; another machine moves the points along the time axis.")
    return fig
