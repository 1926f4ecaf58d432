"""Where things are: the project checkout, the dataset root and the outputs folder, one rule for each; and
every environment variable the project reads, with what it does and who reads it (ENVIRONMENT, at the end).

A relative default is taken from the project checkout when this library lives in one (it holds
notebooks/), so the CLI run from the project root and a notebook run from notebooks/ agree;
an installed copy outside a checkout falls back on the working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

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


# ----------------------------------------------------------------------------- environment variables
# Every environment variable the project reads, or sets for the processes it starts, named once here: modules use
# these constants, never the names. tests/test_environment.py checks that the library reads none ENVIRONMENT lacks
# and that each one listed is used somewhere.
DATA_ENV = "CIFAR10_ROOT"
OUTPUTS_ENV = "CIFAR_OUTPUTS"
SMOKE_ENV = "CIFAR_SMOKE"
CI_ENV = "CI"
PRECISION_ENV = "CIFAR_PRECISION"
MALLOC_ENV = "CIFAR_MALLOC"
CHANNELS_LAST_GUARD_ENV = "CIFAR_CHANNELS_LAST_GUARD"
PAUSE_ENV = "CIFAR_PAUSE_AT"
TEST_POSTGRES_ENV = "CIFAR_TEST_POSTGRES_URL"
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"
DNNL_ISA_ENV = "DNNL_MAX_CPU_ISA"
RANK_ENV = "RANK"
WORLD_SIZE_ENV = "WORLD_SIZE"
LOCAL_RANK_ENV = "LOCAL_RANK"
LOCAL_WORLD_SIZE_ENV = "LOCAL_WORLD_SIZE"
GROUP_WORLD_SIZE_ENV = "GROUP_WORLD_SIZE"
MASTER_ADDR_ENV = "MASTER_ADDR"
MASTER_PORT_ENV = "MASTER_PORT"
PYTHONPATH_ENV = "PYTHONPATH"
TQDM_DISABLE_ENV = "TQDM_DISABLE"
OMP_THREADS_ENV = "OMP_NUM_THREADS"
UNBUFFERED_ENV = "PYTHONUNBUFFERED"

ENVIRONMENT = {  # name: what it does; who reads it (who sets it, where the project does)
    # The project's own.
    DATA_ENV: "the dataset folder (holding cifar-10-batches-py/) unless --data-root says; paths.data_root (.ci/run)",
    OUTPUTS_ENV: "where runs and figures go by default; paths.outputs_dir (notebooks/conftest.py: a temporary one)",
    SMOKE_ENV: "'1' or '0': the notebooks' SMOKE default; core.config (report.runner, notebooks/conftest.py)",
    CI_ENV: "set by CI services: smoke mode by default while $CIFAR_SMOKE is unset; core.config",
    PRECISION_ENV: "fp32, bf16 or fp16: what precision 'auto' means, whatever the CPU; core.cpu (make test)",
    MALLOC_ENV: "'retain' (the default: glibc reuses freed memory) or 'system'; core.allocator",
    CHANNELS_LAST_GUARD_ENV: "'off' shows oneDNN's channels_last defect, never for real work; core.channels_last",
    PAUSE_ENV: "'EPOCH:STEP[:FILE]': a run stands still there until a signal; runs.training (crash tests)",
    TEST_POSTGRES_ENV: "a PostgreSQL URL for the search tests, which skip without it; tests/analysis/test_search.py (.ci/run)",
    # oneDNN's, read by the library too.
    ONEDNN_ISA_ENV: "caps oneDNN's instructions, so the ISA class and 'auto'; core.cpu (tests/core/test_layout.py)",
    DNNL_ISA_ENV: "the same cap under oneDNN's older name; core.cpu",
    # torchrun's: it sets them in every process it starts.
    RANK_ENV: "this process's rank among all; runs.distributed",
    WORLD_SIZE_ENV: "how many processes train together (above 1: a distributed run); runs.distributed",
    LOCAL_RANK_ENV: "this process's rank on its machine: the GPU it takes; runs.distributed",
    LOCAL_WORLD_SIZE_ENV: "processes on this machine, for the command that starts a run again; runs.distributed",
    GROUP_WORLD_SIZE_ENV: "machines taking part, for the same command; runs.distributed",
    MASTER_ADDR_ENV: "where the processes meet; torch.distributed (tests/runs/test_distributed.py plays torchrun)",
    MASTER_PORT_ENV: "the port they meet on; torch.distributed (tests/runs/test_distributed.py)",
    # Set for the processes the project starts, read by others.
    PYTHONPATH_ENV: "child processes import this very library; Python (report.runner, notebooks/conftest.py, tests)",
    TQDM_DISABLE_ENV: "'1': no progress bars on the report's rendered pages; tqdm (report.runner, for its kernels)",
    OMP_THREADS_ENV: "torch's threads in the tests' child processes, so they share the cores; torch (tests)",
    UNBUFFERED_ENV: "'1': the tests' child processes write their output as it comes; Python (tests)",
}
