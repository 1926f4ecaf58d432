"""Figures: learning curves, confusion heatmap, image grids, reliability diagrams.

Each function returns a matplotlib Figure; saving is the caller's choice (`atomic.save_figure`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt


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
    return fig
