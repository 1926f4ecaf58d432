"""robustness: accuracy per corruption and severity from logits, summaries per run and per group, and the figures
drawn from them (robustness_figures), on hand-made logits whose accuracies are known."""

import matplotlib
import pandas as pd
import pytest
import torch

from cifar_utils.analysis import corruptions, robustness, robustness_figures

matplotlib.use("Agg")


def _logits(labels: torch.Tensor, right: int) -> torch.Tensor:
    """Logits that classify the first `right` images correctly and the rest as the next class."""
    predicted = labels.clone()
    predicted[right:] = (labels[right:] + 1) % 10
    return torch.nn.functional.one_hot(predicted, 10).float()


@pytest.fixture
def evaluated():
    labels = torch.arange(10).repeat(2)  # 20 images
    noise, blur = list(corruptions.CORRUPTIONS)[0], list(corruptions.CORRUPTIONS)[-1]
    runs = []
    for seed, clean_right in ((1, 20), (2, 18)):
        ev = robustness.Evaluated(
            name=f"r{seed}", group="model", seed=seed, config=None, clean=_logits(labels, clean_right)
        )
        ev.corrupted = {(noise, 1): _logits(labels, 15), (noise, 5): _logits(labels, 5), (blur, 1): _logits(labels, 10)}
        runs.append(ev)
    return runs, labels, noise, blur


def test_accuracy_frame_and_summary_follow_the_logits(evaluated):
    runs, labels, noise, blur = evaluated
    frame = robustness.accuracy_frame(runs, labels)
    assert len(frame) == 2 * 4
    clean = frame[frame.corruption == robustness.CLEAN].set_index("run")["accuracy"]
    assert clean.to_dict() == {"r1": 1.0, "r2": 0.9}
    summary = robustness.robustness_summary(frame).set_index("run")
    assert summary.loc["r1", "mca"] == pytest.approx((0.75 + 0.25 + 0.5) / 3)
    assert summary.loc["r1", "relative_drop"] == pytest.approx(1 - 0.5)
    grid = robustness.accuracy_grid(frame, "model")
    assert grid.loc[noise, 5] == pytest.approx(0.25) and pd.isna(grid.loc[blur, 5])


def test_the_headline_table_names_the_hardest_corruption_and_gives_mean_and_sd(evaluated):
    runs, labels, noise, _ = evaluated
    frame = robustness.accuracy_frame(runs, labels)
    table = robustness.headline_table(robustness.robustness_summary(frame), frame)
    assert table.loc["model", "Seeds"] == 2
    assert "±" in table.loc["model", "Clean accuracy"]
    assert table.loc["model", "Hardest corruption"].startswith(noise) or "(" in table.loc["model", "Hardest corruption"]


def test_the_cost_line_is_said_before_the_sets_are_made(tmp_path):
    line = robustness.cost_line(2000, 65, 2, tmp_path / "none")
    assert "65 corrupted sets of 2,000 images" in line and f"{65 * 2000 * 3072 / 1e9:.2f} GB" in line


def test_the_figures_draw_from_the_frame(evaluated):
    runs, labels, noise, _ = evaluated
    frame = robustness.accuracy_frame(runs, labels)
    for fig in (
        robustness_figures.plot_accuracy_heatmaps(frame, ["model"]),
        robustness_figures.plot_severity_curves(frame, ["model"]),
    ):
        assert fig.axes
        matplotlib.pyplot.close(fig)


def test_the_explanation_gallery_wraps_so_a_report_page_shows_it_at_full_size():
    import matplotlib.pyplot as plt
    import torch

    n = 16  # notebook 06's gallery: 2 weakest classes x 2 kinds x 4 images
    fig = robustness_figures.plot_explanations(
        "run", torch.rand(n, 3, 32, 32) * 255, torch.rand(n, 32, 32), torch.rand(n, 32, 32), ["cat\n→ dog (51%)"] * n
    )
    try:
        width_px = fig.get_size_inches()[0] * fig.dpi
        assert width_px <= 1234  # a report's output area at a 1280-pixel window: not shrunk, captions readable
        titled = [ax for ax in fig.axes if ax.get_title()]
        assert len(titled) == n and min(ax.title.get_fontsize() for ax in titled) >= 9
    finally:
        plt.close(fig)
