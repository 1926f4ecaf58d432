"""Faults and concurrency: two writers of one run folder, --overwrite killed mid-run, a full disk, a
read-only folder, temporary files of live writers.

The two-writer and SIGKILL tests run the real CLI in child processes and stop them at a known
optimizer step with CIFAR_PAUSE_AT (see training._wait_for_a_signal): the child stands still there
and touches a marker file; deleting the marker lets it go on.
"""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifar_utils.cli import main
from cifar_utils.core.config import TrainConfig
from cifar_utils.core.data import load_cifar10
from cifar_utils.errors import DiskError, FolderBusy, TrainingInterrupted
from cifar_utils.report import runner as R
from cifar_utils.runs import atomic, locks, run_files
from cifar_utils.runs.training import PAUSE_ENV, fit

REPO = Path(__file__).resolve().parents[2]
# 100 training images in batches of 50: two optimizer steps an epoch, a pause point after the first.
TINY = [
    "--batch-size",
    "50",
    "--subset",
    "100",
    "--val-size",
    "100",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--no-progress",
    "--no-verify",
]
# One thread (the test machine's 2 cores are shared); unbuffered, so that a test can read what a child printed.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


def _train_cmd(root, run, *extra) -> list[str]:
    bootstrap = "import sys; from cifar_utils.cli import main; sys.exit(main())"
    return [
        sys.executable,
        "-c",
        bootstrap,
        "train",
        "--data-root",
        str(root),
        "--out",
        str(run),
        *TINY,
        *map(str, extra),
    ]


def _start(cmd, pause_at: str | None = None, marker: Path | None = None, stdout=subprocess.PIPE) -> subprocess.Popen:
    env = dict(ONE_THREAD, **({PAUSE_ENV: f"{pause_at}:{marker}"} if pause_at else {}))
    return subprocess.Popen(cmd, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(condition, what: str, procs=(), seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a child ended before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _beside(run: Path) -> list[str]:
    """Names next to the run folder other than the run itself and its lock file."""
    return sorted(p.name for p in run.parent.iterdir() if p.name not in (run.name, locks.beside(run).name))


@pytest.fixture
def dataset(synthetic_root):
    return load_cifar10(synthetic_root, download=False, verify=False)


@pytest.fixture
def old_run(dataset, tmp_path) -> Path:
    """A finished one-epoch run with notebook 03's analysis.json, the run an --overwrite must not lose early."""
    run = tmp_path / "runs" / "run"
    fit(
        TrainConfig(epochs=1, batch_size=50, train_subset=100, val_size=100, device="cpu", precision="fp32"),
        dataset=dataset,
        run_dir=run,
        progress=False,
        log=lambda *_: None,
    )
    run_files.write_analysis(run, {"test_accuracy": 0.123, "test_loss": 9.0, "test_images": 100})
    return run


# ----------------------------------------------------------------------------- two writers


@pytest.mark.slow
def test_two_writers_at_once_one_wins_the_other_gets_one_line_and_a_waiter_follows(synthetic_root, tmp_path):
    run, marker = tmp_path / "runs" / "run", tmp_path / "paused"
    first, second = (_start(_train_cmd(synthetic_root, run, "--epochs", "2"), "1:1", marker) for _ in range(2))
    # Whichever locks the folder first stands still after its first step, holding the lock; the other must be refused.
    _wait_for(
        lambda: marker.exists() and (first.poll() is not None or second.poll() is not None),
        "one writer to stand still and the other to stop",
    )
    winner, loser = (first, second) if second.poll() is not None else (second, first)
    out, err = loser.communicate(timeout=60)
    assert loser.returncode == 2
    line = _one_error_line(err)
    assert line.startswith(f"error: run folder {run} is being written by another process (PID {winner.pid}: ")
    assert f"train --data-root {synthetic_root} --out {run}" in line
    assert line.endswith(
        "; wait until it finishes, add --wait (wait=True in Python) to start when it does, or write elsewhere"
    )

    # A third writer with --wait queues behind the winner, then replaces its run.
    log = tmp_path / "waiter.out"
    with open(log, "w") as stdout:
        waiter = _start(
            _train_cmd(synthetic_root, run, "--epochs", "1", "--seed", "7", "--wait", "--overwrite"), stdout=stdout
        )
        _wait_for(lambda: "waiting for" in log.read_text(), "the waiter to wait", procs=[waiter, winner])
        assert f"waiting for PID {winner.pid}: " in log.read_text() and winner.poll() is None
        marker.unlink()  # the winner goes on and finishes
        assert winner.wait(timeout=240) == 0, winner.communicate()
        assert waiter.wait(timeout=240) == 0, waiter.communicate()

    finished = run_files.load_run(run)
    assert finished.config.seed == 7 and len(finished.history) == 1 and finished.metrics["epochs"] == 1
    assert len(run_files.read_history(run / run_files.HISTORY)) == 1
    assert not list(run.glob(".*.tmp")) and _beside(run) == []


def test_a_held_run_folder_or_report_is_refused_in_process_with_the_holders_pid(dataset, tmp_path, synthetic_root):
    """fit (a notebook) and run_report meet the same lock as the CLI; the holder here is a plain child process."""
    run, out, ready = tmp_path / "out" / "runs" / "seed-seed_cnn-seed0-smoke", tmp_path / "out", tmp_path / "ready"
    holder_code = (
        "import sys, time, types\n"
        f"package = types.ModuleType('cifar_utils'); package.__path__ = [{str(REPO / 'cifar_utils')!r}]\n"
        "sys.modules['cifar_utils'] = package\n"
        "from cifar_utils.runs import locks\n"
        f"with locks.held(locks.beside({str(run)!r}), 'x'):\n"
        f"    open({str(ready)!r}, 'w').close(); time.sleep(120)\n"
    )
    (tmp_path / "holder.py").write_text(holder_code)
    holder = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), "--holder-flag"])
    try:
        _wait_for(ready.exists, "the holder to lock", procs=[holder])
        config = TrainConfig(epochs=1, batch_size=50, train_subset=100, val_size=100, device="cpu")
        with pytest.raises(
            FolderBusy,
            match=rf"run folder {re.escape(str(run))} is being written by another process "
            rf"\(PID {holder.pid}: \S*python\S* \S*holder.py --holder-flag\); wait until it finishes, add --wait",
        ):
            fit(config, dataset=dataset, run_dir=run, progress=False)
        assert not run.exists()  # refused before anything was written
        # The report trains that very run folder, so it is refused too, before any notebook run_files.
        with pytest.raises(
            FolderBusy,
            match=rf"run folder {re.escape(str(run))} is being written by another process "
            rf"\(PID {holder.pid}",
        ):
            R.run_report(out, smoke=True, data_root=synthetic_root, verify=False, experiments=False, log=None)
        assert not list(out.glob(".report-staging-*"))
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released the lock: the same call now goes through.
    fit(config, dataset=dataset, run_dir=run, progress=False, log=lambda *_: None)
    assert run_files.load_run(run).history


def test_a_second_report_on_the_same_folder_is_refused(tmp_path, synthetic_root):
    """The holder is this very process through another open file: flock keeps those apart too."""
    out = tmp_path / "out"
    out.mkdir()
    with locks.held(out / locks.REPORT_LOCK, "report"):
        with pytest.raises(
            FolderBusy,
            match=rf"^report folder {re.escape(str(out))} is being written by another "
            rf"process \(PID {os.getpid()}: ",
        ):
            R.run_report(out, smoke=True, data_root=synthetic_root, verify=False, experiments=False, log=None)
        assert not list(out.glob(".report-staging-*"))
    assert (out / locks.REPORT_LOCK).read_text() == ""  # released: it names nobody


# ----------------------------------------------------------------------------- --overwrite never loses the old run


@pytest.mark.slow
def test_sigkill_during_overwrite_keeps_the_old_run_whole(synthetic_root, old_run, tmp_path):
    before = _files(old_run)
    marker = tmp_path / "paused"
    proc = _start(_train_cmd(synthetic_root, old_run, "--epochs", "1", "--seed", "5", "--overwrite"), "1:1", marker)
    _wait_for(marker.exists, "the overwrite to stand inside its first epoch", procs=[proc])
    staged = [name for name in _beside(old_run) if name.startswith(f".{old_run.name}.staging-pid{proc.pid}-")]
    assert len(staged) == 1 and (old_run.parent / staged[0] / run_files.CONFIG).is_file()  # the new run, beside
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)

    assert _files(old_run) == before  # every byte, analysis.json included
    loaded = run_files.load_run(old_run)
    assert loaded.config.seed == 0 and len(loaded.history) == 1 and loaded.metrics["test_accuracy"] is not None
    assert run_files.list_runs(old_run.parent) == [old_run]  # the killed writer's staging folder is not a run
    # The next writer sweeps up what the killed one left, and replaces the run.
    assert (
        main(
            [
                "train",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(old_run),
                *TINY,
                "--epochs",
                "1",
                "--seed",
                "5",
                "--overwrite",
            ]
        )
        == 0
    )
    assert run_files.load_run(old_run).config.seed == 5
    assert not (old_run / run_files.ANALYSIS).exists() and _beside(old_run) == []


@pytest.mark.slow
def test_after_the_first_checkpoint_nothing_of_the_old_run_survives(synthetic_root, old_run, tmp_path):
    """SIGKILL in epoch 2 of the overwrite: the new run has taken the folder (and can be resumed); no old file is left."""
    (old_run / ".metrics.json.pid99999999.stale.tmp").write_text("half")  # what a writer long dead left behind
    marker = tmp_path / "paused"
    proc = _start(_train_cmd(synthetic_root, old_run, "--epochs", "2", "--seed", "5", "--overwrite"), "2:1", marker)
    _wait_for(marker.exists, "the overwrite to stand inside epoch 2", procs=[proc])
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)

    assert sorted(p.name for p in old_run.iterdir()) == [run_files.CONFIG, run_files.HISTORY, run_files.CHECKPOINT]
    assert run_files.read_json(old_run / run_files.CONFIG)["seed"] == 5 and _beside(old_run) == []
    assert len(run_files.resume_checkpoint(old_run)["history"]) == 1
    assert (
        main(["train", "--resume", str(old_run), "--data-root", str(synthetic_root), "--no-verify", "--no-progress"])
        == 0
    )
    assert len(run_files.load_run(old_run).history) == 2


def test_ctrl_c_before_the_first_checkpoint_of_an_overwrite_keeps_the_old_run(dataset, old_run):
    before = _files(old_run)

    def ctrl_c(line):
        raise KeyboardInterrupt

    config = TrainConfig(epochs=1, batch_size=50, train_subset=100, val_size=100, device="cpu", seed=3)
    with pytest.raises(TrainingInterrupted, match="before its first checkpoint, so there is nothing to resume"):
        fit(config, dataset=dataset, run_dir=old_run, overwrite=True, progress=False, log=ctrl_c)
    assert _files(old_run) == before and _beside(old_run) == []
    assert run_files.load_run(old_run).config.seed == 0


def test_overwrite_in_process_replaces_every_file(dataset, old_run):
    config = TrainConfig(epochs=1, batch_size=50, train_subset=100, val_size=100, device="cpu", seed=3)
    fit(config, dataset=dataset, run_dir=old_run, overwrite=True, progress=False, log=lambda *_: None)
    assert sorted(p.name for p in old_run.iterdir()) == sorted(
        [run_files.CONFIG, run_files.HISTORY, run_files.CHECKPOINT, run_files.METRICS, run_files.CURVES]
    )
    assert run_files.load_run(old_run).config.seed == 3 and _beside(old_run) == []


# ----------------------------------------------------------------------------- temporary files are per writer


def test_cleanup_never_deletes_a_live_writers_temporary_file(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # finished and reaped: no such process now
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "mine": f".model.pt.pid{os.getpid()}.abc123.tmp",
            "live": f".history.csv.pid{live.pid}.x_9.tmp",
            "dead": f".model.pt.pid{dead_pid}.q1w2.tmp",
            "old": ".metrics.json.k3j4h5.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_text("partial")
        removed = atomic.remove_temporaries(tmp_path)
        assert sorted(p.name for p in removed) == sorted([names["dead"], names["old"]])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["mine"], names["live"]])
    finally:
        live.kill()
        live.wait()
    with atomic.atomic_path(tmp_path / "model.pt") as tmp:
        assert tmp.name.startswith(f".model.pt.pid{os.getpid()}.") and tmp.name.endswith(".tmp")


# ----------------------------------------------------------------------------- a full disk, a read-only folder


def _mount(target: Path, *options: str) -> bool:
    """Mount (root only); False where this machine does not allow it (a container, a user account)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    target.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", *options, str(target)], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def mounts():
    """mount(target, *options) -> bool; everything mounted is unmounted afterwards."""
    done = []

    def mount(target: Path, *options: str) -> bool:
        ok = _mount(target, *options)
        if ok:
            done.append(target)
        return ok

    yield mount
    for target in reversed(done):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _fill_checkpoints(monkeypatch):
    """Stand-in for a full disk where nothing can be mounted: every checkpoint write fails with ENOSPC,
    as it does on a real full disk (the small JSON files before it still fit)."""

    def full(self, data):
        self.error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise self.error

    monkeypatch.setattr(atomic._RecordingWriter, "write", full)


def _train(root, run, *extra) -> int:
    return main(["train", "--data-root", str(root), "--out", str(run), *TINY, "--epochs", "1", *extra])


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(synthetic_root, tmp_path, mounts, monkeypatch, capsys):
    """A real 256 KiB tmpfs when this test may mount one (the checkpoint, ~1 MB, does not fit), else a patched write."""
    disk = tmp_path / "disk"
    if not mounts(disk, "-t", "tmpfs", "-o", "size=256k", "tmpfs"):
        disk.mkdir()
        _fill_checkpoints(monkeypatch)
    run = disk / "run"
    assert _train(synthetic_root, run) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == (
        f"error: cannot write {run / run_files.CHECKPOINT}: no space left on the device (ENOSPC); "
        f"free some space or choose another --out"
    )
    # config.json is whole; no temporary file, no truncated checkpoint.
    assert (
        sorted(p.name for p in run.iterdir()) == [run_files.CONFIG]
        and run_files.read_json(run / run_files.CONFIG)["epochs"] == 1
    )


def test_an_overwrite_that_fills_the_disk_leaves_the_old_run(
    synthetic_root, dataset, tmp_path, mounts, monkeypatch, capsys
):
    """The old run fits on the disk, a second checkpoint beside it does not (or, without mount, the write is patched)."""
    disk = tmp_path / "disk"
    mounted = mounts(disk, "-t", "tmpfs", "-o", "size=2m", "tmpfs")
    disk.mkdir(exist_ok=True)
    run = disk / "run"
    fit(
        TrainConfig(epochs=1, batch_size=50, train_subset=100, val_size=100, device="cpu", precision="fp32"),
        dataset=dataset,
        run_dir=run,
        progress=False,
        log=lambda *_: None,
    )
    if mounted:  # fill the disk up to ~0.3 MB: room for a config.json, not for a checkpoint
        free = shutil.disk_usage(disk).free
        (disk / "ballast").write_bytes(b"\0" * max(0, free - 300_000))
    else:
        _fill_checkpoints(monkeypatch)
    before = _files(run)
    assert _train(synthetic_root, run, "--overwrite", "--seed", "4") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {disk}/.run.staging-pid{os.getpid()}-")
    assert line.endswith(
        f"/model.pt: no space left on the device (ENOSPC); free some space or choose another --out; "
        f"the run already in {run} is untouched (replacing a run needs room for both until the new "
        f"one's first checkpoint)"
    )
    assert _files(run) == before and run_files.load_run(run).config.seed == 0
    assert _beside(run) == (["ballast"] if mounted else [])


def _deny_writes_under(folder: Path, monkeypatch, code: int = errno.EACCES):
    """Every os-level call that creates or changes something under `folder` fails as a denied permission would.

    Needed because this test may run as root, which chmod does not stop. Patched: os.open with a
    creating or writing flag, os.mkdir, os.replace, os.rename (what the lock file, Path.mkdir and
    tempfile use; the builtin open() is not patched, and is never the first write here)."""
    inside = lambda path: str(os.path.abspath(path)).startswith(str(folder))  # noqa: E731

    def deny(path):
        raise OSError(code, os.strerror(code), str(path))

    real_open, real_mkdir, real_replace, real_rename = os.open, os.mkdir, os.replace, os.rename
    writing = os.O_CREAT | os.O_WRONLY | os.O_RDWR | os.O_TRUNC
    monkeypatch.setattr(
        os, "open", lambda p, flags, *a, **k: deny(p) if inside(p) and flags & writing else real_open(p, flags, *a, **k)
    )
    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: deny(p) if inside(p) else real_mkdir(p, *a, **k))
    monkeypatch.setattr(os, "replace", lambda s, d, *a, **k: deny(d) if inside(d) else real_replace(s, d, *a, **k))
    monkeypatch.setattr(os, "rename", lambda s, d, *a, **k: deny(d) if inside(d) else real_rename(s, d, *a, **k))


@pytest.mark.parametrize("how", ["read-only mount", "permission denied"])
def test_a_folder_that_cannot_be_written_is_one_line_and_the_old_run_survives(
    how, synthetic_root, dataset, tmp_path, mounts, monkeypatch, capsys
):
    """`read-only mount`: a real tmpfs remounted read-only (root only; skipped elsewhere). `permission denied`:
    the os-level calls patched to raise EACCES, which chmod cannot produce for root."""
    folder = tmp_path / "outputs"
    if how == "read-only mount" and not mounts(folder, "-t", "tmpfs", "-o", "size=4m", "tmpfs"):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission); the patched variant runs instead")
    folder.mkdir(exist_ok=True)
    old = folder / "runs" / "old"
    fit(
        TrainConfig(epochs=1, batch_size=50, train_subset=100, val_size=100, device="cpu", precision="fp32"),
        dataset=dataset,
        run_dir=old,
        progress=False,
        log=lambda *_: None,
    )
    before = _files(old)
    if how == "read-only mount":
        assert subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True).returncode == 0
        cause = "the file system is read-only (EROFS); choose another --out on a writable disk"
    else:
        _deny_writes_under(folder, monkeypatch)
        cause = "permission denied (EACCES); choose another --out you can write to, or change the folder's permissions"

    runs_folder = folder / "runs"
    for argv in (["--out", str(runs_folder / "new")], ["--out", str(old), "--overwrite"]):
        assert _train(synthetic_root, argv[1], *argv[2:]) == 2
        assert _one_error_line(capsys.readouterr().err) == f"error: cannot write in {runs_folder}: {cause}"
    with pytest.raises(DiskError) as exc:
        R.run_report(folder / "report", smoke=True, data_root=synthetic_root, verify=False, experiments=False, log=None)
    assert str(exc.value) == f"cannot create {folder / 'report'}: {cause}"
    assert _files(old) == before and run_files.load_run(old).history
    assert sorted(p.name for p in runs_folder.iterdir()) == [".old.lock", "old"]


def test_a_disk_error_inside_a_write_names_the_target_and_removes_the_temporary(tmp_path):
    with pytest.raises(DiskError, match=rf"cannot write {tmp_path / 'metrics.json'}: no space left on the device"):
        with atomic.atomic_path(tmp_path / "metrics.json") as tmp:
            tmp.write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_no_module_named_is_still_one_line(monkeypatch, capsys):
    """The CLI's last net: an OSError from anywhere (here loading a run) is one line with the path and the cause."""
    import cifar_utils.cli as cli

    def unreadable(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/runs/x/model.pt")

    monkeypatch.setattr(cli, "load_run", unreadable)
    assert main(["evaluate", "/runs/x"]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        "error: /runs/x/model.pt: permission denied (EACCES); check the path, its permissions and its disk"
    )
