"""Figures of experiments over many runs: intervals per group, forest plots of comparisons, search trials,
accuracy-against-time fronts. Each function returns a matplotlib Figure; saving is the caller's choice."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..core.plots import add_caption
from .stats import summarize

# ----------------------------------------------------------------------------- experiments


def plot_group_intervals(
    frame,
    by: str,
    metrics=(("val_accuracy", "Validation"), ("test_accuracy", "Test")),
    confidence: float = 0.95,
    title: str | None = None,
):
    """Mean accuracy per value of `by` with t confidence intervals as error bars, each seed a dot."""

    order = list(dict.fromkeys(frame[by]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(order)), 4.2))
    offsets = np.linspace(-0.15, 0.15, len(metrics))
    for (column, label), offset, colour in zip(metrics, offsets, ("tab:blue", "tab:orange", "tab:green")):
        xs = np.arange(len(order)) + offset
        summaries = [summarize(frame.loc[frame[by] == v, column], confidence) for v in order]
        means = np.array([100 * s.mean for s in summaries])
        halves = np.array([100 * s.half_width if s.n > 1 else 0.0 for s in summaries])
        ax.errorbar(
            xs, means, yerr=halves, fmt="o", capsize=5, color=colour, label=f"{label} (mean, {confidence:.0%} CI)"
        )
        for x, value in zip(xs, order):
            seeds = 100 * frame.loc[frame[by] == value, column].to_numpy(dtype=float)
            ax.scatter(np.full(len(seeds), x + 0.06), seeds, s=10, color=colour, alpha=0.45)
    ax.set_xticks(range(len(order)), [str(v) for v in order], rotation=15)
    ax.set(ylabel="Accuracy (%)", xlabel=by, title=title or f"Accuracy by {by}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_forest(
    table,
    reference: str,
    margin: float | None = None,
    alpha: float = 0.05,
    title: str | None = None,
    what: str = "accuracy",
):
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
        colour = (
            ("tab:green" if row["delta"] > 0 else "tab:red") if differs else "tab:blue" if row["equivalent"] else "0.35"
        )
        low, high = row["ci_low"], row["ci_high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.hlines(y, low, high, color=colour, linewidth=2.2)
        ax.plot(row["delta"], y, "o", color=colour, markersize=7)
    ax.set_yticks(range(len(rows)), [str(r) for r in reversed(rows)])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set(
        xlabel=f"Δ {what} vs {reference} (points; 95% paired interval)", title=title or f"Each arm against {reference}"
    )
    handles = [
        plt.Line2D([], [], marker="o", color=c, linestyle="-", label=label)
        for c, label in (
            ("tab:green", "raises it (Holm p < 0.05)"),
            ("tab:red", "lowers it (Holm p < 0.05)"),
            ("tab:blue", "equivalent (TOST)"),
            ("0.35", "not resolvable"),
        )
    ]
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
    for part, y, marker, colour, label in (
        (done, done["value"], "o", "tab:blue", "complete"),
        (pruned, pruned["last_value"], "s", "tab:orange", "pruned (last value)"),
    ):
        y = 100 * y.to_numpy(float)
        inside = np.isfinite(y) & (y >= bottom)
        ax.scatter(part.index[inside], y[inside], marker=marker, color=colour, label=label, zorder=3)
        below = np.isfinite(y) & (y < bottom)
        if below.any():
            ax.scatter(
                part.index[below],
                np.full(below.sum(), edge),
                marker="v",
                color=colour,
                zorder=3,
                label=f"{label}, below the axis",
            )
            for x, v in zip(part.index[below], y[below]):
                ax.annotate(f"{v:.1f}", (x, edge), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    if len(failed):
        ax.scatter(
            failed.index,
            np.full(len(failed), edge),
            marker="x",
            color="tab:red",
            zorder=3,
            label="failed (diverged or stopped)",
        )
    if len(done):
        best = 100 * done["value"].astype(float).cummax()
        x = np.append(done.index.to_numpy(), trials.index.max())  # the best so far holds to the last trial
        ax.step(
            x, np.append(best.to_numpy(), best.iloc[-1]), where="post", color="0.3", linewidth=1, label="best so far"
        )
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylim(bottom, top)
    ax.set(xlabel="trial", ylabel="validation accuracy (%)", title=title or "Search: each trial's validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_pareto(table, title: str | None = None, machine: str | None = None):
    """Validation accuracy against median training seconds, one line per architecture through its configurations
    (epochs annotated, seed SD as error bars), the Pareto front ringed; `table` as architecture_comparison.rung_table
    gives it."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, group in table.groupby("architecture", sort=False):
        group = group.sort_values("median train s")
        ax.errorbar(
            group["median train s"],
            group["val accuracy %"],
            yerr=group["std"].fillna(0),
            fmt="o-",
            capsize=3,
            label=name,
        )
        for _, row in group.iterrows():
            ax.annotate(
                f"{int(row['epochs'])} ep",
                (row["median train s"], row["val accuracy %"]),
                textcoords="offset points",
                xytext=(4, -12),
                fontsize=8,
                color="#555",
            )
    front = table[table["Pareto"]]
    ax.scatter(
        front["median train s"],
        front["val accuracy %"],
        s=180,
        facecolors="none",
        edgecolors="black",
        linewidths=1.2,
        label="Pareto front",
        zorder=3,
    )
    ax.set_xscale("log")
    ax.set(xlabel="Training seconds (median over seeds, log scale)", ylabel="Validation accuracy (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # outside: no point is ever hidden
    ax.margins(x=0.08, y=0.08)  # room for the last point's label
    fig.tight_layout()
    if machine:
        add_caption(fig, f"Measured on {machine}; another machine moves the points along the time axis.")
    return fig
