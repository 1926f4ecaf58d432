"""Temperature scaling recovers a known temperature; the scores have their known values; T is fitted only
on images the run did not train on."""

import math

import pytest
import torch

from cifar_utils.analysis import calibration as C
from cifar_utils.core import data as D
from cifar_utils.core.config import TrainConfig
from cifar_utils.errors import ConfigError


def _calibrated(n=20000, classes=10, seed=0):
    """Logits of a known linear model, with labels drawn from their own softmax: calibrated by construction."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 16, generator=gen)
    weights = torch.randn(16, classes, generator=gen) * 0.6
    logits = features @ weights
    labels = torch.multinomial(logits.softmax(1), 1, generator=gen).flatten()
    return logits, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_scaled_logits_give_back_the_scale(scale):
    logits, labels = _calibrated()
    t = C.fit_temperature(logits * scale, labels)
    assert t == pytest.approx(scale, rel=0.05)
    assert C.nll(logits * scale, labels, t) < C.nll(logits * scale, labels) - 0.01  # the fit helps
    assert C.ece(logits * scale, labels, t) < C.ece(logits * scale, labels)


def test_calibrated_logits_keep_t_near_one_and_accuracy_unchanged():
    logits, labels = _calibrated(seed=1)
    t = C.fit_temperature(logits, labels)
    assert t == pytest.approx(1.0, rel=0.05)
    before, after = C.calibration_scores(logits, labels), C.calibration_scores(logits, labels, t)
    assert before["accuracy"] == after["accuracy"]  # dividing by T never changes the argmax


def test_the_fit_is_the_minimum_of_the_nll():
    logits, labels = _calibrated(n=3000, seed=2)
    logits = logits * 2.2
    t = C.fit_temperature(logits, labels)
    for other in (t * 0.9, t * 1.1):
        assert C.nll(logits, labels, t) < C.nll(logits, labels, other)


def test_scores_of_known_predictions():
    labels = torch.tensor([0, 1, 2, 3])
    certain = torch.nn.functional.one_hot(labels, 4).double() * 1000  # softmax one-hot on the truth
    assert C.brier(certain, labels) == pytest.approx(0.0, abs=1e-12)
    assert C.nll(certain, labels) == pytest.approx(0.0, abs=1e-12)
    uniform = torch.zeros(4, 4)
    assert C.brier(uniform, labels) == pytest.approx(3 / 4)  # (C-1)/C for uniform over C classes
    assert C.nll(uniform, labels) == pytest.approx(math.log(4))
    wrong = torch.nn.functional.one_hot((labels + 1) % 4, 4).double() * 1000
    assert C.brier(wrong, labels) == pytest.approx(2.0)
    assert C.ece(wrong, labels) == pytest.approx(1.0)  # confident and always wrong


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="logits"):
        C.fit_temperature(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ConfigError, match="logits"):
        C.fit_temperature(torch.zeros(5, 10), torch.zeros(4, dtype=torch.long))


# ----------------------------------------------------------------------------- held-out images


def _dataset(synthetic_root):
    return D.load_cifar10(synthetic_root, download=False, verify=False)


def test_held_out_is_the_runs_validation_split(synthetic_root):
    data = _dataset(synthetic_root)
    config = TrainConfig(val_size=50)
    held = C.held_out_images(data, config)
    split = D.split_dataset(data, 50)
    assert torch.equal(held.images, split.val_images) and torch.equal(held.labels, split.val_labels)
    assert "validation split (50 images)" in held.source


def test_without_validation_the_unused_training_images_are_held_out(synthetic_root):
    data = _dataset(synthetic_root)
    held = C.held_out_images(data, TrainConfig(val_size=0, train_subset=300))
    train_idx, _ = D.split_indices(data, 0, 300)
    assert len(held.images) == len(data.train_images) - 300
    # None of them is a training image of the run: compare pixels, row by row.
    trained = {bytes(img.numpy().tobytes()) for img in data.train_images[train_idx]}
    assert not any(bytes(img.numpy().tobytes()) in trained for img in held.images)
    assert "outside the run's 300-image training subset" in held.source


def test_a_run_that_saw_every_training_image_has_no_held_out_images(synthetic_root):
    assert C.held_out_images(_dataset(synthetic_root), TrainConfig(val_size=0)) is None
