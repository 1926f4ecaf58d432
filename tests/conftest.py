import os
from pathlib import Path

import pytest
import torch

from cifar_utils.core.data import FOLDER, write_synthetic_cifar10


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny dataset in CIFAR-10's on-disk format (500 train, 100 test images)."""
    return write_synthetic_cifar10(tmp_path_factory.mktemp("synthetic"), n_train_per_batch=100, n_test=100)


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real CIFAR-10 from $CIFAR10_ROOT; tests that need it are skipped (never downloaded) without it."""
    root = os.environ.get("CIFAR10_ROOT")
    if not root or not (Path(root) / FOLDER).is_dir():
        pytest.skip("real CIFAR-10 not available: set CIFAR10_ROOT to the folder holding cifar-10-batches-py/")
    return Path(root)


@pytest.fixture(scope="session")
def real_data(real_root):
    from cifar_utils.core.data import load_cifar10

    return load_cifar10(real_root, download=False)


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, restored after: child processes and the test then share the 2 cores
    without oversubscribing them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
