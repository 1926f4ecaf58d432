"""nbval runs these notebooks as tests (`pytest --nbval-lax notebooks/`, part of plain `pytest`).

nbval executes a notebook as it is, without papermill, so the notebooks read their defaults
from the environment, which their kernels inherit from this process:

- CIFAR_SMOKE=1: every notebook runs in smoke mode (1000 training images, one epoch, part of the
  test set) and never downloads;
- CIFAR_OUTPUTS=<a temporary folder>: runs and figures go there, never into the repository;
- PYTHONPATH: the kernels import this checkout's cifar_utils even where it is not installed.

A notebook stops at its first failed cell: the cells after it are skipped, not run. They depend on it,
so they would fail too, and a cell that hangs would cost the 300 s cell timeout once per cell.

Each notebook's jupytext pair (NN_*.py) is left alone: nbval runs the .ipynb files only.

Without the real dataset ($CIFAR10_ROOT) the notebooks are skipped, as the other real-data tests are.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The jupytext pairs (NN_*.py, see .pre-commit-config.yaml) are the notebooks as text, not tests: nbval
# runs the .ipynb files, and no setting of python_files may make pytest import the pairs.
collect_ignore_glob = ["[0-9][0-9]_*.py"]
_OUTPUTS = tempfile.mkdtemp(prefix="cifar-nbval-")

os.environ["CIFAR_SMOKE"] = "1"
os.environ["CIFAR_OUTPUTS"] = _OUTPUTS
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)


def _real_data_missing() -> str | None:
    root = os.environ.get("CIFAR10_ROOT")
    if not root or not (Path(root) / "cifar-10-batches-py").is_dir():
        return "real CIFAR-10 not available: set CIFAR10_ROOT to the folder holding cifar-10-batches-py/"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _real_data_missing()
    if reason is None:
        return
    for item in items:
        path = Path(str(item.path))
        if path.suffix == ".ipynb" and path.parent == HERE:
            item.add_marker(pytest.mark.skip(reason=reason))


_FAILED_CELL = pytest.StashKey[str]()  # on a notebook's item: the nodeid of its first failed cell


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    notebook = item.parent
    if report.failed and Path(str(item.path)).suffix == ".ipynb" and _FAILED_CELL not in notebook.stash:
        notebook.stash[_FAILED_CELL] = item.nodeid
    return report


def pytest_runtest_setup(item):
    failed = item.parent.stash.get(_FAILED_CELL, None) if Path(str(item.path)).suffix == ".ipynb" else None
    if failed is not None:
        pytest.skip(f"not run: an earlier cell of this notebook failed ({failed})")


def pytest_unconfigure(config):
    shutil.rmtree(_OUTPUTS, ignore_errors=True)
