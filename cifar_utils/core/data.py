"""Find, verify and load CIFAR-10; split it; cut batches from it.

The whole dataset lives in memory as uint8 tensors (N, 3, 32, 32) with int64 labels, 180 MB in
all. Batches are cut from those tensors by indexing and augmented as whole tensors (augment.py),
so no DataLoader workers and no per-image Python work are needed.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from ..paths import DATA_ENV, data_root

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER = "cifar-10-batches-py"
# The md5 sums torchvision checks; the originals published by Krizhevsky (2009).
FILES = {
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: Path) -> None:
    """Refuse a missing, truncated or altered file before anything is unpickled."""
    for name, expected in FILES.items():
        path = folder / name
        if not path.is_file():
            raise DatasetError(
                f"CIFAR-10 file {path} is missing; delete {folder} and run again to download it, "
                f"or point --data-root / ${DATA_ENV} at a complete copy"
            )
        if _md5(path) != expected:
            raise DatasetError(
                f"CIFAR-10 file {path} is corrupt (md5 mismatch: truncated or altered); "
                f"delete {folder} and run again to download it afresh"
            )


class _CifarUnpickler(pickle.Unpickler):
    """Rebuilds only what a CIFAR batch holds: dicts, lists, bytes and numpy arrays.

    Any other global (os.system, builtins.eval, ...) is refused, so a tampered file cannot run
    code even when it is read with verify=False.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes as _codecs.encode(str, "latin1") under pickle protocol 2.
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return _CifarUnpickler(io.BufferedReader(fh), encoding="bytes").load()
    except Exception as exc:  # only allowed constructors ran, so any failure (even MemoryError) means a bad file
        raise DatasetError(
            f"CIFAR-10 file {path} could not be read ({str(exc) or type(exc).__name__}); it is corrupt or not a CIFAR batch: "
            f"delete it and run again to download it afresh"
        ) from None


def _read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle(path)
    try:
        pixels = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:  # not a dict, no such key, wrong size: whatever a bad file holds
        raise DatasetError(
            f"CIFAR-10 file {path} is not a CIFAR batch ({exc}); delete it and download it afresh"
        ) from None
    if len(labels) != len(pixels) or (len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES))):
        raise DatasetError(f"CIFAR-10 file {path} has inconsistent labels; delete it and download it afresh")
    return torch.from_numpy(pixels.copy()), torch.from_numpy(labels)


@dataclass
class Cifar10:
    """The 50,000 training and 10,000 test images as uint8 (N, 3, 32, 32) tensors."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    root: Path
    classes: tuple[str, ...] = CLASSES


def _download(root: Path) -> None:
    # Imported here so that only a real first run pays for torchvision's import.
    from torchvision.datasets import CIFAR10

    print(f"CIFAR-10 not found under {root}; downloading it with torchvision (about 170 MB)...")
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types; all say the same to a user
        raise DatasetError(
            f"could not download CIFAR-10 into {root} ({exc}); check the network, or point "
            f"--data-root / ${DATA_ENV} at a folder holding {FOLDER}/"
        ) from None


def load_cifar10(root: str | os.PathLike | None = None, *, download: bool = True, verify: bool = True) -> Cifar10:
    """Load CIFAR-10 from `root/cifar-10-batches-py`, downloading it first when it is absent.

    `verify=False` skips the md5 check (for small synthetic datasets in tests); the restricted
    unpickler still refuses anything but arrays.
    """
    root = data_root(root)
    folder = root / FOLDER
    if not folder.is_dir():
        if not download:
            raise DatasetError(
                f"CIFAR-10 not found: {folder} does not exist; set --data-root or ${DATA_ENV} to the "
                f"folder that holds {FOLDER}/, or allow the download"
            )
        _download(root)
    if verify:
        verify_files(folder)
    for name in TRAIN_FILES + ("test_batch",):
        if not (folder / name).is_file():
            raise DatasetError(f"CIFAR-10 file {folder / name} is missing; delete {folder} and download it afresh")
    train = [_read_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = _read_batch(folder / "test_batch")
    return Cifar10(
        train_images=torch.cat([x for x, _ in train]),
        train_labels=torch.cat([y for _, y in train]),
        test_images=test_images,
        test_labels=test_labels,
        root=root,
    )


def write_synthetic_cifar10(
    root: str | os.PathLike, n_train_per_batch: int = 100, n_test: int = 100, seed: int = 0
) -> Path:
    """Write a tiny random dataset in CIFAR-10's on-disk format (for tests and demos).

    Each class gets a distinct mean colour so that a model can learn something from it.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        labels = rng.integers(0, len(CLASSES), n)
        base = (labels[:, None] * 23 % 256).astype(np.int64)
        pixels = np.clip(base + rng.integers(-40, 40, (n, 3072)), 0, 255).astype(np.uint8)
        return {b"data": pixels, b"labels": labels.tolist()}

    for name in TRAIN_FILES:
        (folder / name).write_bytes(pickle.dumps(batch(n_train_per_batch), protocol=4))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test), protocol=4))
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": n_train_per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))
    return Path(root)


# ----------------------------------------------------------------------------- splits


def stratified_split(labels: torch.Tensor, val_size: int = 5000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (train, validation), the same share of every class in each, by seed.

    Returns sorted index tensors; the same labels and seed always give the same split.
    """
    n = len(labels)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be between 0 and {n - 1}, got {val_size}")
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    # Largest-remainder apportionment, so the quotas add up to val_size exactly.
    exact = [val_size * len(idx) / n for idx in per_class]
    quotas = [int(q) for q in exact]
    order = sorted(range(len(exact)), key=lambda i: exact[i] - quotas[i], reverse=True)
    for i in order[: val_size - sum(quotas)]:
        quotas[i] += 1
    val = []
    for idx, quota in zip(per_class, quotas):
        val.append(idx[torch.randperm(len(idx), generator=gen)[:quota]])
    val_idx = torch.sort(torch.cat(val)).values if val else torch.empty(0, dtype=torch.long)
    mask = torch.ones(n, dtype=torch.bool)
    mask[val_idx] = False
    return torch.nonzero(mask).flatten(), val_idx


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images on the 0-255 scale (float64 for exactness)."""
    x = images.to(torch.float64)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    drop_last: bool = False,
    augment: Callable | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, labels) batches cut from in-memory tensors, optionally augmented."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(images)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        x, y = images[idx], labels[idx]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment is not None:
            x = augment(x, generator)
        yield x, y


@dataclass
class Split:
    """The training data of one run: which images train and which validate."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor


def split_indices(
    dataset: Cifar10, val_size: int, train_subset: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices into the training images of the split every run and notebook uses
    (validation seed 0); `train_subset` keeps a seeded, class-mixed share of the training images (and a fifth
    as many validation images)."""
    if val_size >= len(dataset.train_labels):
        raise ConfigError(
            f"val_size {val_size} leaves no training images: {dataset.root} holds only "
            f"{len(dataset.train_labels)}; choose a smaller --val-size"
        )
    train_idx, val_idx = stratified_split(dataset.train_labels, val_size, seed=0)
    if train_subset is not None:
        gen = torch.Generator().manual_seed(1234)  # the first images of a fixed shuffle
        train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)[:train_subset]]
        if len(val_idx):
            val_idx = val_idx[torch.randperm(len(val_idx), generator=gen)[: max(1, train_subset // 5)]]
    return train_idx, val_idx


def split_dataset(dataset: Cifar10, val_size: int, train_subset: int | None = None) -> Split:
    """The images and labels of `split_indices`."""
    train_idx, val_idx = split_indices(dataset, val_size, train_subset)
    return Split(
        dataset.train_images[train_idx],
        dataset.train_labels[train_idx],
        dataset.train_images[val_idx],
        dataset.train_labels[val_idx],
    )


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
