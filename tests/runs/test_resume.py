"""Crash safety: resume after SIGKILL and Ctrl-C gives the uninterrupted result; writes are atomic."""

import os
import pickle
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cifar_utils.cli import main
from cifar_utils.core.config import TrainConfig
from cifar_utils.core.data import load_cifar10
from cifar_utils.errors import CifarError, TrainingInterrupted
from cifar_utils.runs import atomic, run_files
from cifar_utils.runs.training import PAUSE_ENV, fit

REPO = Path(__file__).resolve().parents[2]
# 400 training images in batches of 16: 25 steps an epoch, long enough to stop a run inside one.
# Adam, augmentation, dropout, a warm-up + decay schedule and label smoothing: every piece of
# state a resume must restore (optimizer moments, generator, global RNG, schedule position).
CONFIG = [
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--val-size",
    "100",
    "--augment",
    "flip+translate",
    "--schedule",
    "onecycle",
    "--warmup-epochs",
    "1",
    "--label-smoothing",
    "0.1",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--no-progress",
]


# One thread, here and in the children: the test machine's 2 cores are shared, and oversubscribed
# threads run 5-10x slower. (Resume is exact with 2 threads as well; that was checked by hand.)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


def _cli(*args) -> list[str]:
    # Python's own Ctrl-C handler in the child, so that SIGINT becomes KeyboardInterrupt even when
    # this test runs where SIGINT is ignored (a background job in a non-interactive shell). Set by
    # the child itself: no preexec_fn in a parent that already runs threads.
    bootstrap = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from cifar_utils.cli import main; sys.exit(main())"
    )
    return [sys.executable, "-c", bootstrap, *map(str, args)]


def _start(cmd, pause_at: str, marker: Path) -> subprocess.Popen:
    """Start `cmd`, which will stand still after the given optimizer step (EPOCH:STEP) and touch `marker`."""
    env = {**ONE_THREAD, PAUSE_ENV: f"{pause_at}:{marker}"}
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / run_files.HISTORY
    return run_files.read_history(path) if path.exists() else []


def _stop_at(proc: subprocess.Popen, marker: Path, sig: int) -> tuple[str, str]:
    """Wait until the child stands at its pause point (inside an epoch), then send `sig`."""
    deadline = time.monotonic() + 240
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its pause point: {proc.communicate()}")
        assert time.monotonic() < deadline, "the run did not reach its pause point in time"
        time.sleep(0.02)
    proc.send_signal(sig)
    return proc.communicate(timeout=120)


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _scores(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "loss" in k or "accuracy" in k}


@pytest.fixture(scope="module")
def reference(synthetic_root, tmp_path_factory):
    """The uninterrupted run of CONFIG, trained in this process as the CLI would."""
    from cifar_utils.cli import build_parser, config_from_args  # the CLI's own reading of CONFIG

    config = config_from_args(build_parser().parse_args(["train", *CONFIG]))
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(config, data_root=synthetic_root, verify_data=False, run_dir=run_dir, progress=False, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    return run_dir


@pytest.mark.slow
def test_sigkill_then_ctrl_c_then_resume_matches_an_uninterrupted_run(synthetic_root, reference, tmp_path, capsys):
    data = ["--data-root", synthetic_root, "--no-verify"]
    run = tmp_path / "run"

    # 1. SIGKILL at step 12 of epoch 2's 25: nothing can run, the checkpoint of epoch 1 must survive.
    _stop_at(
        _start(_cli("train", "--out", run, *data, *CONFIG), "2:12", tmp_path / "paused-1"),
        tmp_path / "paused-1",
        signal.SIGKILL,
    )
    assert len(_rows(run)) == 1 and len(run_files.load_checkpoint(run)["history"]) == 1

    # 2. Resume, then Ctrl-C at step 12 of epoch 3: a clean exit that says how to continue.
    out, err = _stop_at(
        _start(_cli("train", "--resume", run, *data, "--no-progress"), "3:12", tmp_path / "paused-2"),
        tmp_path / "paused-2",
        signal.SIGINT,
    )
    assert "resuming" in out and "after epoch 1 of 3" in out
    message = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert message.startswith("error: training interrupted in epoch 3 of 3; the checkpoint after epoch 2 is in")
    assert f"--resume {run}" in message
    assert len(run_files.load_checkpoint(run)["history"]) == 2 and not list(run.glob(".*.tmp"))

    # 3. The command the message gave finishes the run (run here, in this process, to save a start-up).
    command = shlex.split(message.split("continue with: ", 1)[1])
    assert command[:4] == ["python", "-m", "cifar_utils", "train"]
    assert main(command[3:]) == 0

    # Same history (but for wall time), same final scores, the very same weights.
    assert _without_seconds(_rows(run)) == _without_seconds(_rows(reference))
    assert len(_rows(run)) == 3
    assert _scores(run_files.read_json(run / run_files.METRICS)) == _scores(
        run_files.read_json(reference / run_files.METRICS)
    )
    resumed, uninterrupted = run_files.load_checkpoint(run)["model"], run_files.load_checkpoint(reference)["model"]
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert run_files.read_json(run / run_files.METRICS)["provenance"]["seed"] == 0


def test_resume_in_process_after_interrupt_like_a_notebook(synthetic_root, tmp_path):
    """fit(resume=True) is what a notebook calls; a KeyboardInterrupt there keeps epoch 1's checkpoint."""
    dataset = load_cifar10(synthetic_root, download=False, verify=False)
    config = TrainConfig(
        epochs=3,
        batch_size=50,
        val_size=100,
        train_subset=100,
        augment="flip+translate",
        device="cpu",
        precision="fp32",
    )
    quiet = dict(dataset=dataset, progress=False)
    reference = fit(config, log=lambda *_: None, **quiet)

    def ctrl_c_in_epoch_2(line):
        if line.startswith("Epoch 2/"):  # printed after epoch 2 trained, before it was saved
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match=r"in epoch 2 of 3; the checkpoint after epoch 1 is in .*resume=True"):
        fit(config, run_dir=tmp_path / "run", log=ctrl_c_in_epoch_2, **quiet)
    assert len(run_files.read_history(tmp_path / "run" / run_files.HISTORY)) == 1
    resumed = fit(config, run_dir=tmp_path / "run", resume=True, log=lambda *_: None, **quiet)
    assert _without_seconds(resumed.history) == _without_seconds(reference.history)
    assert _scores(resumed.metrics) == _scores(reference.metrics)


def test_interrupt_before_the_first_checkpoint_says_there_is_nothing_to_resume(synthetic_root, tmp_path):
    dataset = load_cifar10(synthetic_root, download=False, verify=False)

    def ctrl_c(line):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match=r"in epoch 1 of 2, before its first checkpoint.*overwrite=True"):
        fit(
            TrainConfig(epochs=2, batch_size=50, val_size=100, train_subset=50, device="cpu"),
            dataset=dataset,
            run_dir=tmp_path / "run",
            progress=False,
            log=ctrl_c,
        )
    with pytest.raises(CifarError, match=r"no checkpoint \(model.pt\) because its first epoch never finished"):
        fit(run_dir=tmp_path / "run", resume=True, dataset=dataset, progress=False)


# ----------------------------------------------------------------------------- atomic writes


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "history.csv"
    atomic.write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]
    atomic.write_text(target, "new\n")
    assert target.read_text() == "new\n" and len(list(tmp_path.iterdir())) == 1
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unpicklable_checkpoint_keeps_the_previous_one(tmp_path):
    target = tmp_path / "model.pt"
    atomic.torch_save({"weights": torch.ones(3)}, target)
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        atomic.torch_save({"weights": torch.zeros(3), "bad": lambda: None}, target)  # fails mid-write
    assert torch.equal(torch.load(target, weights_only=True)["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    """SIGKILL inside the block: no cleanup can run, yet the target is untouched; resume sweeps the rest."""
    target = tmp_path / "metrics.json"
    atomic.write_text(target, '{"old": true}\n')
    # The package without its __init__ (which imports torch): only atomic.py and errors.py load.
    child = (
        f"import os, signal, sys, types\n"
        f"package = types.ModuleType('cifar_utils'); package.__path__ = [{str(REPO / 'cifar_utils')!r}]\n"
        f"sys.modules['cifar_utils'] = package\n"
        f"from cifar_utils.runs import atomic\n"
        f"with atomic.atomic_path({str(target)!r}) as tmp:\n"
        f"    tmp.write_text('{{\"new\": tr')\n"
        f"    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", child]).returncode == -signal.SIGKILL
    assert target.read_text() == '{"old": true}\n'
    leftovers = atomic.remove_temporaries(tmp_path)
    assert [p.name.startswith(".metrics.json.") for p in leftovers] == [True]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_fit_writes_every_output_through_a_rename(synthetic_root, tmp_path, monkeypatch):
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (renamed.append(Path(dst).name), real_replace(src, dst)))
    dataset = load_cifar10(synthetic_root, download=False, verify=False)
    fit(
        TrainConfig(epochs=1, batch_size=50, val_size=100, train_subset=50, device="cpu"),
        dataset=dataset,
        run_dir=tmp_path / "run",
        progress=False,
        log=lambda *_: None,
    )
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert {run_files.CONFIG, run_files.HISTORY, run_files.METRICS, run_files.CHECKPOINT, run_files.CURVES} <= written
    assert written <= set(renamed)


@pytest.fixture
def python_sigint_handler():
    """Python's own Ctrl-C handler, as a command-line run has it. An earlier test in the same
    process (a Jupyter kernel client, a C library) can leave another one installed, and once made
    this test fail by chance; this test is about what interrupts_deferred does with Python's."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield signal.default_int_handler
    signal.signal(signal.SIGINT, before if before is not None else signal.default_int_handler)


def test_ctrl_c_during_a_save_waits_for_the_save(python_sigint_handler):
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with atomic.interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("checkpoint written")
            steps.append("history written")
        steps.append("not reached")
    assert steps == ["checkpoint written", "history written"]
    assert signal.getsignal(signal.SIGINT) is python_sigint_handler
