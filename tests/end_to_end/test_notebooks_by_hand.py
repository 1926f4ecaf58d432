"""A JupyterLab user's day: a notebook run by hand (papermill here, as a headless user would) changes no committed
file, a changed parameter makes a new run beside the committed one, a notebook saved with its outputs shows no
change in git, the kernel prints no transport warning, and tqdm has its widgets."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cifar_utils import paths
from cifar_utils.runs import run_files

PROJECT = paths.project_dir()
BASELINE = PROJECT / "outputs" / "runs" / "seed-seed_cnn-seed0"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _papermill(notebook: Path, out: Path, env: dict, **parameters) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "papermill", str(notebook), str(out), "--cwd", str(notebook.parent)]
    for name, value in parameters.items():
        args += ["-p", name, str(value)]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_notebook_02_with_a_changed_parameter_keeps_the_committed_baseline(tmp_path, synthetic_root):
    """The trap of issue 28: EPOCHS 1 and a training subset used to replace outputs/runs/seed-seed_cnn-seed0."""
    if not (BASELINE / run_files.METRICS).is_file():
        pytest.skip("the committed baseline is not in this checkout")
    before = _digest(BASELINE)
    env = {k: v for k, v in os.environ.items() if k not in (paths.OUTPUTS_ENV, "CIFAR_SMOKE", "CI")}
    name = "seed-seed_cnn-seed0-epochs1-train_subset200-val_size100"
    scratch_run = PROJECT / paths.SCRATCH / "runs" / name
    shutil.rmtree(scratch_run, ignore_errors=True)
    try:
        done = _papermill(
            PROJECT / "notebooks" / "02_training.ipynb",
            tmp_path / "02.ipynb",
            env,
            EPOCHS=1,
            TRAIN_SUBSET=200,
            VAL_SIZE=100,
            DATA_ROOT=synthetic_root,
            VERIFY_DATA=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert _digest(BASELINE) == before, "the committed baseline changed"
        assert (scratch_run / run_files.METRICS).is_file(), "the new run was not written to scratch/runs/<new name>"
        said = "".join(
            o.get("text", "") for c in nbformat.read(tmp_path / "02.ipynb", 4).cells for o in c.get("outputs", [])
        )
        assert "Writing to scratch/" in said
        assert "without encryption" not in done.stderr  # the kernel's transport warning is off (make setup)
    finally:
        shutil.rmtree(scratch_run, ignore_errors=True)


def test_a_notebook_saved_with_outputs_adds_nothing_to_git(tmp_path):
    """The clean filter that `make setup` installs (Makefile: strip-outputs) hides a notebook's outputs from git:
    `git diff` shows nothing and `git add` stages nothing. (`git status` lists the file until that `git add`: git
    takes a changed file size as a change without running the filter.)"""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    # What `make strip-outputs` sets in the project's repository, set here in a temporary one.
    subprocess.run(
        [*git, "config", "filter.nbstripout.clean", f'"{sys.executable}" -m nbstripout --keep-id'], check=True
    )
    subprocess.run([*git, "config", "filter.nbstripout.smudge", "cat"], check=True)
    (repo / ".git" / "info" / "attributes").write_text("*.ipynb filter=nbstripout\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    nbformat.write(nb, repo / "a.ipynb")
    subprocess.run([*git, "add", "a.ipynb"], check=True)
    subprocess.run([*git, "commit", "-qm", "clean"], check=True)
    executed = nbformat.read(repo / "a.ipynb", 4)
    executed.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    executed.cells[0].execution_count = 1
    nbformat.write(executed, repo / "a.ipynb")
    assert subprocess.run([*git, "diff", "--exit-code", "--quiet"]).returncode == 0
    subprocess.run([*git, "add", "a.ipynb"], check=True)
    assert subprocess.run([*git, "diff", "--cached", "--exit-code", "--quiet"]).returncode == 0
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    assert status == "", status
    assert "outputs" in (repo / "a.ipynb").read_text()  # the file on disk keeps what the user saw


def test_the_makefile_installs_the_filter_with_the_hooks_keys():
    makefile = (PROJECT / "Makefile").read_text()
    hooks = (PROJECT / ".pre-commit-config.yaml").read_text()
    assert "strip-outputs:" in makefile and "nbstripout --install" in makefile
    for key in ("metadata.papermill", "cell.metadata.papermill", "metadata.language_info.version"):
        assert key in makefile and key in hooks


def test_tqdm_has_its_widgets():
    import ipywidgets

    assert int(ipywidgets.__version__.split(".")[0]) >= 8


def test_no_notebook_filters_the_missing_widgets_warning():
    for path in sorted((PROJECT / "notebooks").glob("0*.py")):
        assert "IProgress" not in path.read_text(), path.name


def test_scratch_is_ignored_by_git():
    probe = PROJECT / paths.SCRATCH / "runs" / "x" / "metrics.json"
    ignored = subprocess.run(["git", "-C", str(PROJECT), "check-ignore", "-q", str(probe)])
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0
