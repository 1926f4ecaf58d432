"""Where things are: the project checkout, the dataset root and the outputs folder. One rule for each.

A relative default is taken from the project checkout when this library lives in one (it holds
notebooks/), so the CLI run from the project root and a notebook run from notebooks/ agree;
an installed copy outside a checkout falls back on the working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CIFAR10_ROOT"  # the folder holding cifar-10-batches-py/
OUTPUTS_ENV = "CIFAR_OUTPUTS"  # where notebooks write runs and figures by default (tests: a temporary folder)
OUTPUTS = "outputs"  # what the report writes and the repository commits
SCRATCH = "scratch"  # what a notebook run by hand writes (git-ignored), so it never changes a committed file
OUTPUT_PNG = "output.png"  # the seed project's name for the training curves


def project_dir() -> Path:
    """The checkout this library lives in (it holds notebooks/), else the working folder."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "notebooks").is_dir() else Path.cwd()


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The dataset root: `path`, else $CIFAR10_ROOT, else <project>/data."""
    if path not in (None, ""):
        return Path(path).expanduser()
    return Path(os.environ.get(DATA_ENV) or project_dir() / "data").expanduser()


def outputs_dir(path: str | os.PathLike | None = None) -> Path:
    """The outputs folder: `path`, else $CIFAR_OUTPUTS, else <project>/outputs."""
    if path not in (None, ""):
        return Path(path).expanduser()
    return Path(os.environ.get(OUTPUTS_ENV) or project_dir() / "outputs").expanduser()


def committed_outputs_dir() -> Path:
    """<project>/outputs: the report's folder, committed; a notebook run by hand reads it and never writes it."""
    return project_dir() / OUTPUTS


def notebook_outputs_dir(path: str | os.PathLike | None = None) -> Path:
    """Where a notebook writes: `path` (the report passes its own), else $CIFAR_OUTPUTS, else <project>/scratch.

    A notebook run by hand, in JupyterLab or with papermill, writes its runs, figures and tables to the
    git-ignored scratch folder; only the report writes outputs/. Runs and records are still looked up
    in outputs/ as well, so the committed ones are reused rather than trained again."""
    if path not in (None, ""):
        return Path(path).expanduser()
    return Path(os.environ.get(OUTPUTS_ENV) or project_dir() / SCRATCH).expanduser()


def runs_dir(outputs: str | os.PathLike | None = None) -> Path:
    """Where runs are saved by default: <outputs>/runs."""
    return outputs_dir(outputs) / "runs"
