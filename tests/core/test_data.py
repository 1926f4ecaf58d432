import pytest
import torch

from cifar_utils import paths
from cifar_utils.core import augment as A
from cifar_utils.core import data as D
from cifar_utils.errors import DatasetError


def test_real_files_verify_and_load(real_data):
    assert real_data.train_images.shape == (50000, 3, 32, 32)
    assert real_data.train_images.dtype == torch.uint8
    assert real_data.train_labels.dtype == torch.int64
    assert real_data.test_images.shape == (10000, 3, 32, 32)
    assert torch.bincount(real_data.test_labels).tolist() == [1000] * 10


def test_root_resolution_prefers_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path / "env"))
    assert D.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert D.data_root(None) == tmp_path / "env"
    monkeypatch.delenv("CIFAR10_ROOT")
    assert D.data_root(None) == paths.project_dir() / "data"  # from any working folder, as notebooks need


def test_synthetic_dataset_loads_only_without_verification(synthetic_root):
    with pytest.raises(DatasetError, match="corrupt"):
        D.load_cifar10(synthetic_root, download=False)
    ds = D.load_cifar10(synthetic_root, download=False, verify=False)
    assert ds.train_images.shape == (500, 3, 32, 32) and ds.test_images.shape == (100, 3, 32, 32)


def test_split_is_deterministic_disjoint_and_stratified(real_data):
    labels = real_data.train_labels
    train_a, val_a = D.stratified_split(labels, 5000, seed=0)
    train_b, val_b = D.stratified_split(labels, 5000, seed=0)
    assert torch.equal(train_a, train_b) and torch.equal(val_a, val_b)
    assert len(train_a) == 45000 and len(val_a) == 5000
    assert len(set(train_a.tolist()) & set(val_a.tolist())) == 0
    assert len(set(train_a.tolist()) | set(val_a.tolist())) == 50000
    assert torch.bincount(labels[val_a]).tolist() == [500] * 10
    _, val_other = D.stratified_split(labels, 5000, seed=1)
    assert not torch.equal(val_a, val_other)


def test_split_quota_adds_up_for_uneven_sizes():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 3)
    train, val = D.stratified_split(labels, 4, seed=3)
    assert len(val) == 4 and len(train) == 11
    assert sorted(torch.bincount(labels[val], minlength=3).tolist()) == [1, 1, 2]


def test_channel_stats_normalise_the_model_input():
    """The model's first step: (uint8 - mean) / std with the training split's constants."""
    from cifar_utils.core.models import Classifier

    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    mean, std = D.channel_stats(images)
    x = Classifier(torch.nn.Identity(), mean, std)(images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def test_random_crop_keeps_shape_dtype_and_translates():
    gen = torch.Generator().manual_seed(0)
    images = torch.arange(4 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(4, 3, 32, 32)
    out = A.random_crop(images, 2, gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    # every output window is the input shifted by at most 2 pixels (reflect-padded)
    padded = torch.nn.functional.pad(images.float(), (2,) * 4, mode="reflect").to(torch.uint8)
    for i in range(4):
        assert any(torch.equal(out[i], padded[i, :, dy : dy + 32, dx : dx + 32]) for dy in range(5) for dx in range(5))


def test_random_crop_zero_pad_mode_fills_with_zeros():
    images = torch.full((64, 3, 32, 32), 200, dtype=torch.uint8)
    out = A.random_crop(images, 4, torch.Generator().manual_seed(0), mode="constant")
    assert set(out.unique().tolist()) <= {0, 200} and (out == 0).any()


def test_random_flip_mirrors_about_half():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1000, 3, 4, 4), dtype=torch.uint8)
    out = A.random_flip(images, gen)
    flipped = (out == images.flip(-1)).flatten(1).all(1) & ~(out == images).flatten(1).all(1)
    kept = (out == images).flatten(1).all(1)
    assert bool((flipped | kept).all())
    assert 400 < int(flipped.sum()) < 600


def test_iterate_batches_covers_every_index_once_and_drops_last():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    labels = torch.arange(10)
    gen = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in D.iterate_batches(images, labels, 3, shuffle=True, generator=gen)])
    assert sorted(seen.tolist()) == list(range(10))
    batches = list(D.iterate_batches(images, labels, 3, drop_last=True))
    assert [len(y) for _, y in batches] == [3, 3, 3]
    for x, y in batches:
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images travel with their labels
    with pytest.raises(ValueError):
        next(D.iterate_batches(images, labels, 0))


def test_augmented_batches_stay_uint8_in_range():
    images = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    labels = torch.zeros(50, dtype=torch.long)
    aug = A.BatchAugment(flip=True, pad=4)
    for x, _ in D.iterate_batches(images, labels, 16, augment=aug, generator=torch.Generator().manual_seed(1)):
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32)
        assert int(x.min()) >= 0 and int(x.max()) <= 255
