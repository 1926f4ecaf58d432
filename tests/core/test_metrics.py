"""metrics.py against values worked out by hand."""

import math

import pytest
import torch

from cifar_utils.core import metrics as M

# Three classes, six images: 0 0 0 1 1 2 predicted as 0 0 1 1 2 2.
LABELS = torch.tensor([0, 0, 0, 1, 1, 2])
PREDS = torch.tensor([0, 0, 1, 1, 2, 2])


def test_accuracy_from_predictions_or_logits():
    assert M.accuracy(PREDS, LABELS) == pytest.approx(4 / 6)
    logits = torch.nn.functional.one_hot(PREDS, 3).float() * 5
    assert M.accuracy(logits, LABELS) == pytest.approx(4 / 6)
    assert math.isnan(M.accuracy(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)))


def test_confusion_matrix_rows_are_true_classes():
    cm = M.confusion_matrix(LABELS, PREDS, num_classes=3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert int(cm.sum()) == len(LABELS)


def test_per_class_precision_recall_f1():
    report = M.per_class_report(M.confusion_matrix(LABELS, PREDS, num_classes=3))
    assert report["precision"].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert report["recall"].tolist() == pytest.approx([2 / 3, 0.5, 1.0])
    assert report["f1"].tolist() == pytest.approx([0.8, 0.5, 2 / 3])
    assert report["support"].tolist() == [3, 2, 1]


def test_a_class_never_predicted_has_zero_precision_and_f1():
    cm = torch.tensor([[2, 0], [1, 0]])  # class 1 is never predicted, never right
    report = M.per_class_report(cm)
    assert report["precision"].tolist() == [pytest.approx(2 / 3), 0.0]
    assert report["recall"].tolist() == [1.0, 0.0]
    assert report["f1"].tolist() == [pytest.approx(0.8), 0.0]


def test_most_confused_pairs_in_order_with_ties_by_class():
    cm = torch.tensor([[5, 3, 0], [1, 6, 3], [0, 4, 2]])
    assert M.most_confused(cm, k=3) == [(2, 1, 4, 4 / 6), (0, 1, 3, 3 / 8), (1, 2, 3, 3 / 10)]
    assert M.most_confused(torch.eye(3, dtype=torch.long) * 4) == []


def test_top_mistakes_are_the_most_confident_wrong_predictions():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.95, 0.05]]))
    labels = torch.tensor([0, 0, 0, 1, 1])  # wrong: 1 (0.8), 2 (0.6), 4 (0.95)
    assert M.top_mistakes(logits, labels, k=2).tolist() == [4, 1]
    assert M.top_mistakes(logits, labels, k=10).tolist() == [4, 1, 2]


def test_calibration_bins_and_expected_calibration_error():
    # Confidences 0.9 (right), 0.75 (wrong), 0.65 (right), 0.55 (right); bins of width 0.2.
    probs = torch.tensor([[0.9, 0.1], [0.75, 0.25], [0.65, 0.35], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 0, 0])
    bins = M.calibration_bins(torch.log(probs), labels, n_bins=5)
    assert bins["edges"].tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert bins["count"].tolist() == [0, 0, 1, 2, 1]
    assert bins["confidence"][2:].tolist() == pytest.approx([0.55, 0.70, 0.9])
    assert bins["accuracy"][2:].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert torch.isnan(bins["confidence"][:2]).all() and torch.isnan(bins["accuracy"][:2]).all()
    # ECE = 1/4 * |1 - .55| + 2/4 * |.5 - .7| + 1/4 * |1 - .9|
    assert M.expected_calibration_error(bins) == pytest.approx(0.2375)


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = torch.tensor([[1.0, 0.0]] * 4)
    bins = M.calibration_bins(torch.log(probs.clamp(min=1e-30)), torch.zeros(4, dtype=torch.long), n_bins=10)
    assert bins["count"].tolist() == [0] * 9 + [4]
    assert M.expected_calibration_error(bins) == pytest.approx(0.0, abs=1e-12)


def test_pixel_statistics():
    images = torch.zeros(3, 3, 2, 2, dtype=torch.uint8)
    images[0] = 10
    images[1] = 20
    images[2, 0] = 255
    labels = torch.tensor([1, 1, 0])
    hist = M.channel_histograms(images)
    assert hist.shape == (3, 256) and hist.sum(1).tolist() == [12, 12, 12]
    assert hist[0, 10] == 4 and hist[0, 20] == 4 and hist[0, 255] == 4 and hist[1, 0] == 4
    means = M.class_mean_images(images, labels, num_classes=3)
    assert means[1].unique().tolist() == [15.0]
    assert means[0, 0].unique().tolist() == [255.0] and means[0, 1:].unique().tolist() == [0.0]
    assert means[2].abs().sum() == 0  # no images of class 2
    assert M.class_counts(labels, 3).tolist() == [1, 2, 0]
    with pytest.raises(TypeError):
        M.channel_histograms(images.float())


def test_histogram_stats_equal_channel_stats():
    from cifar_utils.core.data import channel_stats

    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    images[:5] = 255  # saturated pixels, as in CIFAR-10
    mean, std = M.histogram_stats(M.channel_histograms(images))
    expected_mean, expected_std = channel_stats(images)
    assert torch.allclose(mean, expected_mean, rtol=0, atol=1e-9) and torch.allclose(
        std, expected_std, rtol=0, atol=1e-9
    )
