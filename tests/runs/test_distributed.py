"""One run on several processes (torchrun, DistributedDataParallel, gloo on the CPU).

Two processes with the same global batch, seed and data order end with the history of one
process, within what fp32 rounding explains; they agree with each other exactly; rank 0 alone
writes and speaks; an error on one rank stops all; a killed rank or a Ctrl-C ends the job with
the resume command, and the resumed run ends as the uninterrupted one.
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from cifar_utils.core.config import recipe_config
from cifar_utils.core.data import load_cifar10, split_dataset
from cifar_utils.errors import CifarError
from cifar_utils.runs import run_files
from cifar_utils.runs.training import PAUSE_ENV, fit, init_state

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)

# The older fast recipe (fast10; muon is refused under torchrun until verified) at tiny widths: a whitening conv fitted to the data, FrozenScaleBatchNorm (a
# BatchNorm subclass with its own fp32 forward, which the synchronisation must keep), lookahead
# averaging, label smoothing, and alternating flips and translations drawn from the generator
# that every rank shares. 400 training images in global batches of 32: 12 steps an epoch.
FLAGS = [
    "--recipe",
    "fast10",
    "--model-kwargs",
    '{"widths": [8, 16, 16]}',
    "--batch-size",
    "32",
    "--epochs",
    "3",
    "--val-size",
    "100",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--no-channels-last",
    "--tta",
    "none",
]
CONFIG = recipe_config(
    "fast10",
    model_kwargs={"widths": [8, 16, 16]},
    batch_size=32,
    epochs=3,
    val_size=100,
    device="cpu",
    precision="fp32",
    channels_last=False,
    tta="none",
)
# How far one process and two may drift apart: in fp32 (relative rounding 6e-8) the two processes
# sum every BatchNorm statistic, gradient and loss in another order, which moves each step's
# result by ~1e-7; over 36 steps of SGD with momentum that grew to 3e-5 in the losses (measured).
# A missed synchronisation moves them 1e-3 and more (BatchNorm per slice: 1.3e-3 after epoch 1).
# channels_last is off because torch's channels-last BatchNorm on the CPU rounds its fp32 sums
# far more coarsely (5e-3 off in one seed_cnn gradient; exact in fp64), which would swamp this.
LOSS_TOLERANCE = 1e-4
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _scores(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "loss" in k or "accuracy" in k}


def _error(call) -> str:
    try:
        call()
    except CifarError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _rank(rank: int, world: int, ports: list[int], root: str, out: str) -> None:
    """One rank, as torchrun would start it: the run, then two runs that must fail on every rank."""
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
    )
    dataset = load_cifar10(root, download=False, verify=False)
    whiten = init_state(CONFIG, split_dataset(dataset, CONFIG.val_size), torch.device("cpu")).model.net.whiten.weight
    lines = []
    os.environ["MASTER_PORT"] = str(ports[0])
    result = fit(CONFIG, dataset=dataset, run_dir=Path(out) / "run", progress=False, log=lines.append)
    bn_classes = sorted({type(m).__name__ for m in result.model.modules() if isinstance(m, torch.nn.BatchNorm2d)})
    os.environ["MASTER_PORT"] = str(ports[1])
    odd_batch = _error(
        lambda: fit(
            recipe_config("fast10", **{**CONFIG.to_dict(), "batch_size": 33, "epochs": 1}),
            dataset=dataset,
            progress=False,
            log=lines.append,
        )
    )
    os.environ["MASTER_PORT"] = str(ports[2])
    # Rank 1 alone checks the md5 sums, which the synthetic files fail: a problem of one rank only.
    one_rank_fails = _error(
        lambda: fit(CONFIG, data_root=root, verify_data=rank == 1, progress=False, log=lines.append)
    )
    os.environ["MASTER_PORT"] = str(ports[3])
    muon = _error(
        lambda: fit(
            recipe_config("fast", **{**CONFIG.to_dict(), "optimizer": "muon", "epochs": 1}),
            dataset=dataset,
            progress=False,
            log=lines.append,
        )
    )
    torch.save(
        {
            "history": result.history,
            "log": lines,
            "state": result.model.state_dict(),
            "whiten": whiten,
            "bn_classes": bn_classes,
            "odd_batch": odd_batch,
            "one_rank_fails": one_rank_fails,
            "muon": muon,
        },
        Path(out) / f"rank{rank}.pt",
    )


def _spawn(world: int, root: Path, out: Path, timeout: float = 240) -> list[dict]:
    context = mp.start_processes(
        _rank,
        args=(world, [_free_port() for _ in range(4)], str(root), str(out)),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1):
            assert time.monotonic() < deadline, f"{world} processes did not finish in {timeout} s"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def one_process(synthetic_root, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset = load_cifar10(synthetic_root, download=False, verify=False)
        return fit(
            CONFIG, dataset=dataset, run_dir=tmp_path_factory.mktemp("one") / "run", progress=False, log=lambda *_: None
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_processes(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    return out, _spawn(2, synthetic_root, out)


@pytest.mark.slow
def test_two_processes_end_with_the_history_of_one(one_process, two_processes):
    out, (rank0, rank1) = two_processes
    one, two = one_process.history, rank0["history"]
    assert len(one) == len(two) == CONFIG.epochs
    for a, b in zip(one, two):
        for key in ("train_loss", "val_loss"):
            assert abs(a[key] - b[key]) <= LOSS_TOLERANCE, (key, a, b)
        # images right: at most one differs (rounded: one image is 1/384, and 384 times it can exceed 1 by 1e-14)
        assert round(abs(a["train_acc"] - b["train_acc"]) * 12 * 32, 6) <= 1
        assert round(abs(a["val_acc"] - b["val_acc"]) * 100, 6) <= 1
        assert a["lr"] == b["lr"]
    # The ranks stay in lockstep: the same history and the very same weights on both.
    assert _without_seconds(rank1["history"]) == _without_seconds(two)
    assert rank0["state"].keys() == rank1["state"].keys() == one_process.model.state_dict().keys()
    assert all(torch.equal(rank0["state"][k], rank1["state"][k]) for k in rank0["state"])
    # The whitening each rank fits from the data is the same before any broadcast.
    assert torch.equal(rank0["whiten"], rank1["whiten"]) and rank0["whiten"].abs().sum() > 0
    # BatchNorm was synchronised during the run and is plain (the fast net's own) again after it.
    assert rank0["bn_classes"] == ["FrozenScaleBatchNorm"]


@pytest.mark.slow
def test_rank_0_alone_writes_and_speaks_and_errors_stop_every_rank(two_processes):
    out, (rank0, rank1) = two_processes
    assert rank1["log"] == []
    assert [line.split(" - ")[0] for line in rank0["log"]] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    run = out / "run"
    assert _without_seconds(run_files.read_history(run / run_files.HISTORY)) == _without_seconds(rank0["history"])
    assert run_files.read_json(run / run_files.CONFIG)["provenance"]["processes"] == 2
    saved = run_files.load_checkpoint(run)["model"]
    assert all(torch.equal(saved[k], rank0["state"][k]) for k in saved)
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [run_files.CONFIG, run_files.HISTORY, run_files.CHECKPOINT, run_files.METRICS, run_files.CURVES]
    )
    # A batch that does not split evenly is refused on both ranks, with what to do.
    expected = (
        "ConfigError: batch_size 33 does not split evenly over 2 processes; choose a multiple of 2 (--batch-size 32)"
    )
    assert rank0["odd_batch"].startswith(expected) and rank1["odd_batch"] == rank0["odd_batch"]
    # A failure of rank 1 alone reaches rank 0, which names the rank, instead of leaving it waiting.
    assert (
        rank1["one_rank_fails"].startswith("DatasetError: CIFAR-10 file") and "md5 mismatch" in rank1["one_rank_fails"]
    )
    assert rank0["one_rank_fails"] == "CifarError: process 1 of 2 failed: " + rank1["one_rank_fails"].split(": ", 1)[1]
    # Muon's two-process history has not been shown to match one process yet: refused, not silently different.
    assert rank0["muon"].startswith("ConfigError: the muon optimizer is not yet verified on several processes")
    assert "muon optimizer is not yet verified on several processes" in rank1["muon"]


# ----------------------------------------------------------------------------- torchrun, a killed rank, Ctrl-C


def _torchrun(*args) -> list[str]:
    # --standalone: a free port of its own, so that parallel test runs do not meet on the default one.
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "cifar_utils",
        *map(str, args),
    ]


def _start(cmd: list[str], pause_at: str | None = None, marker: Path | None = None) -> subprocess.Popen:
    env = {**ONE_THREAD, **({PAUSE_ENV: f"{pause_at}:{marker}"} if pause_at else {})}
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(marker: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its pause point: {proc.communicate()}")
        assert time.monotonic() < deadline, "the run did not reach its pause point in time"
        time.sleep(0.05)


def _worker_pid(torchrun_pid: int, rank: int) -> int:
    """The pid of the worker that torchrun started as `rank` (read from its environment in /proc)."""
    children = [
        pid for task in Path(f"/proc/{torchrun_pid}/task").iterdir() for pid in (task / "children").read_text().split()
    ]
    for pid in children:
        if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return int(pid)
    raise AssertionError(f"torchrun {torchrun_pid} has no worker of rank {rank}")


def _message(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err  # said once, by rank 0
    return lines[0]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers in /proc (Linux)")
def test_a_killed_rank_and_ctrl_c_end_the_job_resumably(synthetic_root, two_processes, tmp_path):
    run = tmp_path / "run"
    data = ["--data-root", synthetic_root, "--no-verify", "--no-progress"]

    # 1. SIGKILL rank 1 in epoch 2: torchrun stops rank 0 (SIGTERM), which keeps epoch 1's checkpoint and says so.
    proc = _start(_torchrun("train", "--out", run, *data, *FLAGS), "2:3", tmp_path / "paused-1")
    _wait_for(tmp_path / "paused-1", proc)
    os.kill(_worker_pid(proc.pid, 1), signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    message = _message(err)
    assert message.startswith("error: training interrupted in epoch 2 of 3; the checkpoint after epoch 1 is in"), err
    assert f"continue with: torchrun --standalone --nproc-per-node=2 -m cifar_utils train --resume {run}" in message
    assert len(run_files.read_history(run / run_files.HISTORY)) == 1 and not list(run.glob(".*.tmp"))

    # 2. The command it gave, then Ctrl-C (SIGINT to torchrun, which passes it on) in epoch 3.
    command = shlex.split(message.split("continue with: ", 1)[1])
    assert command[:4] == ["torchrun", "--standalone", "--nproc-per-node=2", "-m"]
    resume = _torchrun(*command[5:], "--no-progress")  # no bar on stderr around the message
    proc = _start(resume, "3:3", tmp_path / "paused-2")
    _wait_for(tmp_path / "paused-2", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "resuming" in out and "after epoch 1 of 3" in out and out.count("resuming") == 1
    assert _message(err).startswith("error: training interrupted in epoch 3 of 3; the checkpoint after epoch 2 is in")
    assert len(run_files.load_checkpoint(run)["history"]) == 2

    # 3. The same command finishes the run: the uninterrupted two-process run, to the last bit.
    proc = _start(resume)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    reference = two_processes[0] / "run"
    assert _without_seconds(run_files.read_history(run / run_files.HISTORY)) == _without_seconds(
        run_files.read_history(reference / run_files.HISTORY)
    )
    assert _scores(run_files.read_json(run / run_files.METRICS)) == _scores(
        run_files.read_json(reference / run_files.METRICS)
    )
    resumed, uninterrupted = run_files.load_checkpoint(run)["model"], run_files.load_checkpoint(reference)["model"]
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    assert out.count("| Epoch |") == 1  # the table, printed by rank 0 alone
