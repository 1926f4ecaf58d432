"""Notebook 06's figures: the corruptions themselves, accuracy heatmaps, severity curves per family,
reliability diagrams before and after temperature scaling, and the Grad-CAM / saliency gallery.

Each function returns a matplotlib Figure; saving is the caller's choice (`atomic.save_figure`).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core import metrics as M
from ..core.plots import show_image
from . import corruptions as CR
from .robustness import CLEAN, accuracy_grid


def plot_corruption_examples(clean, examples: dict):
    """One test image under every corruption (columns, the clean image first) at every severity shown (rows)."""
    names = [n for n in CR.CORRUPTIONS if any(k[0] == n for k in examples)]
    severities = sorted({s for _, s in examples})
    fig, axes = plt.subplots(
        len(severities), len(names) + 1, figsize=(1.05 * (len(names) + 1), 1.2 * len(severities) + 0.8), squeeze=False
    )
    for r, severity in enumerate(severities):
        show_image(axes[r, 0], clean, "clean" if r == 0 else None)
        axes[r, 0].set_ylabel(f"severity {severity}", fontsize=8)
        for c, name in enumerate(names, 1):
            show_image(axes[r, c], examples[(name, severity)], name.replace("_", "\n") if r == 0 else None, fontsize=7)
    fig.suptitle("The corruptions, on the first test image")
    fig.tight_layout()
    return fig


def plot_accuracy_heatmaps(frame: pd.DataFrame, groups: list[str]):
    """Accuracy (%) per corruption and severity, one seaborn heatmap per model (mean over its seeds)."""
    import seaborn as sns

    grids = [accuracy_grid(frame, g) for g in groups]
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(1.0 + 0.9 * grids[0].shape[1] * len(groups) + 2.2 * len(groups), 0.42 * len(grids[0]) + 1.6),
        squeeze=False,
    )
    for ax, group, grid in zip(axes[0], groups, grids):
        sns.heatmap(
            100 * grid,
            annot=True,
            fmt=".1f",
            cmap="viridis",
            vmin=0,
            vmax=100,
            ax=ax,
            cbar_kws={"label": "accuracy (%)"},
            annot_kws={"fontsize": 7},
        )
        clean = frame[(frame.group == group) & (frame.corruption == CLEAN)]["accuracy"].mean()
        ax.set(title=f"{group} (clean {100 * clean:.1f}%)", xlabel="severity", ylabel="")
    fig.tight_layout()
    return fig


def plot_severity_curves(frame: pd.DataFrame, groups: list[str]):
    """Mean accuracy of each family's corruptions against severity (0: clean), one line per model; error bars
    are the std over seeds where a model has several."""
    families = list(CR.FAMILIES)
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.6), sharey=True, squeeze=False)
    for ax, family in zip(axes[0], families):
        for group in groups:
            part = frame[frame.group == group]
            clean = part[part.corruption == CLEAN].groupby("seed")["accuracy"].mean()
            fam = part[part.family == family].groupby(["seed", "severity"])["accuracy"].mean().unstack("severity")
            if fam.empty:
                continue
            per_seed = pd.concat([clean.rename(0), fam], axis=1)
            xs = per_seed.columns.to_numpy()
            std = per_seed.std(ddof=1).to_numpy() if len(per_seed) > 1 else np.zeros(len(xs))
            ax.errorbar(xs, 100 * per_seed.mean().to_numpy(), yerr=100 * std, marker="o", capsize=3, label=group)
        ax.set(title=f"{family} ({len(CR.FAMILIES[family])} corruptions)", xlabel="severity (0: clean)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Accuracy against severity, per family of corruptions")
    fig.tight_layout()
    return fig


def _reliability(ax, logits, labels, temperature: float, n_bins: int, title: str) -> None:
    bins = M.calibration_bins(logits.double() / temperature, labels, n_bins)
    edges = bins["edges"].numpy()
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    ax.bar(
        centres, bins["accuracy"].nan_to_num(0.0).numpy(), width=width, edgecolor="black", alpha=0.8, label="accuracy"
    )
    ax.plot(centres, bins["confidence"].numpy(), "o", color="tab:red", markersize=3, label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{title}\nECE {100 * M.expected_calibration_error(bins):.2f}%")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)


def plot_reliability_pairs(name: str, sets: dict, temperature: float, n_bins: int = 15):
    """Reliability diagrams before (T = 1) and after temperature scaling, side by side, one row per test set
    ({label: (logits, labels)})."""
    fig, axes = plt.subplots(len(sets), 2, figsize=(7.5, 3.3 * len(sets)), squeeze=False, sharex=True, sharey=True)
    for row, (label, (logits, labels)) in zip(axes, sets.items()):
        _reliability(row[0], logits, labels, 1.0, n_bins, f"{label}: before")
        _reliability(row[1], logits, labels, temperature, n_bins, f"{label}: after (T = {temperature:.3f})")
        row[0].set_ylabel("accuracy")
    for ax in axes[-1]:
        ax.set_xlabel("confidence")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Calibration of {name}")
    fig.tight_layout()
    return fig


EXPLANATION_COLUMNS = 8  # images per row of the gallery: 16 in one row would be shrunk to 60% on a report page


def plot_explanations(name: str, images, cams, saliencies, captions: list[str]):
    """A column per image: the image, its Grad-CAM over it, its saliency map (each map scaled to its maximum);
    at most EXPLANATION_COLUMNS images a row, further images in a block of three rows below."""
    n = len(images)
    cols = max(1, min(n, EXPLANATION_COLUMNS))
    blocks = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(3 * blocks, cols, figsize=(1.3 * cols + 0.9, 4.9 * blocks), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        top, c = 3 * (i // cols), i % cols
        image, cam, sal = axes[top, c], axes[top + 1, c], axes[top + 2, c]
        for ax in (image, cam, sal):
            ax.axis("on")
        show_image(image, images[i], captions[i], fontsize=9)
        show_image(cam, images[i])
        cam.imshow(cams[i].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1, extent=(-0.5, 31.5, 31.5, -0.5))
        sal.imshow(saliencies[i].numpy(), cmap="magma", vmin=0, vmax=1)
        sal.set_xticks([])
        sal.set_yticks([])
    for b in range(blocks if n else 0):
        for r, label in enumerate(("image", "Grad-CAM", "saliency")):
            axes[3 * b + r, 0].set_ylabel(label, fontsize=10)
    fig.suptitle(f"{name}: Grad-CAM and saliency of the predicted class", fontsize=12)
    fig.tight_layout()
    return fig
