"""One run on several processes: `torchrun --nproc-per-node=N -m cifar_utils train ...`.

torchrun starts N copies of the command and tells each its place in $RANK, $WORLD_SIZE and
$LOCAL_RANK. Every copy (rank) runs the whole of `fit` on the same config and data, so every rank
draws the same seeded permutation and augmentation; rank r keeps the r-th of N equal slices of
every global batch (`shard_epoch`), so the ranks' slices together are exactly the batch one
process would train on, and `batch_size` stays the global batch. DistributedDataParallel averages
the gradients; each rank's loss is the mean over an equal slice, so the average is the gradient
of the whole batch's mean loss.

BatchNorm is always synchronised (syncbn.py): its statistics are those of the global batch, so
a run computes the same function on 1 or N processes and its result does not depend on how many
processes trained it (the config, which names a run, does not say).

Outside torchrun (no $WORLD_SIZE, or 1) every function here does nothing and training is the
single-process loop, unchanged.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import threading
from typing import Callable, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import CifarError, ConfigError
from ..paths import GROUP_WORLD_SIZE_ENV, LOCAL_RANK_ENV, LOCAL_WORLD_SIZE_ENV, RANK_ENV, WORLD_SIZE_ENV
from .sync_batchnorm import sync_batch_norms

# What a collective's error says when another rank died in the middle of it: gloo raises a plain
# RuntimeError ("Connection closed by peer"), newer backends a torch.distributed.DistError.
_PEER_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "nccl communicator was aborted")


def launched() -> bool:
    """True in a process that torchrun started as one of several."""
    return int(os.environ.get(WORLD_SIZE_ENV, "1")) > 1


def active() -> bool:
    """True while a process group of more than one process is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: 0 in a single-process run (and torchrun's $RANK before the group is up)."""
    return dist.get_rank() if active() else int(os.environ.get(RANK_ENV, "0"))


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that logs, shows progress and writes the run folder."""
    return rank() == 0


def main_only(log: Callable) -> Callable:
    """`log` on rank 0; a function that says nothing on the others."""
    return log if is_main() else (lambda *args, **kwargs: None)


def launch_command() -> str:
    """How to start this run again: `python`, or torchrun with as many processes as now."""
    if not launched():
        return "python"
    per_node = os.environ.get(LOCAL_WORLD_SIZE_ENV, os.environ[WORLD_SIZE_ENV])
    nodes = int(os.environ.get(GROUP_WORLD_SIZE_ENV, "1"))
    if nodes > 1:
        return f"torchrun --nnodes={nodes} --nproc-per-node={per_node} (and the same --rdzv-* options as before)"
    return f"torchrun --standalone --nproc-per-node={per_node}"  # --standalone: any free port


# ----------------------------------------------------------------------------- the process group


class _Session:
    """What `session` keeps: whether the ranks agreed that their setup succeeded, and the BatchNorm
    modules whose class `sync_batch_norms` changed (put back when the session ends)."""

    def __init__(self):
        self.agreed = False
        self.swapped: list[tuple[nn.Module, type]] = []


_SESSION = _Session()


@contextlib.contextmanager
def session() -> Iterator[None]:
    """The process group of a run under torchrun (gloo on the CPU, with NCCL for CUDA tensors where
    there is a GPU), set up on entry and torn down on exit; a no-op in a single process or when the
    caller already set one up. Usable as a decorator (`fit` is one).

    An error on any rank before the ranks agree (`agree`) is shared, so that every rank stops with
    it and rank 0 can say it, instead of the others waiting for a rank that is gone.
    """
    global _SESSION
    owner = launched() and not (dist.is_available() and dist.is_initialized())
    if owner:
        _start()
    outer, _SESSION = _SESSION, _Session()
    restore_signals = _interrupts_from_torchrun() if owner else (lambda: None)
    try:
        yield
    except Exception as exc:
        if active() and not _SESSION.agreed:
            agree(exc)
        raise
    finally:
        for module, cls in _SESSION.swapped:  # plain BatchNorm again, as the model was built
            module.__class__ = cls
        _SESSION = outer
        restore_signals()
        if owner:
            _stop()


def _start() -> None:
    if not dist.is_available():
        raise CifarError(
            "this PyTorch build has no torch.distributed; run without torchrun, or install a build with it"
        )
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"  # CUDA tensors over NCCL; CPU ones (a --device cpu run, objects) over gloo
        local = int(os.environ.get(LOCAL_RANK_ENV, "0"))
        if local < torch.cuda.device_count():
            torch.cuda.set_device(local)
    dist.init_process_group(backend=backend)


def _stop() -> None:
    try:
        dist.destroy_process_group()
    except RuntimeError:  # a peer died: nothing left to tear down politely
        pass


def peer_lost(error: BaseException, log: Callable = print) -> bool:
    """True (and `log` says so) when `error` is a collective failing because another rank died:
    the run then ends as a Ctrl-C does, with its checkpoint kept. Any other error is a bug to show."""
    lost = active() and (
        isinstance(error, getattr(dist, "DistError", ())) or any(phrase in str(error).lower() for phrase in _PEER_LOST)
    )
    if lost:
        log(f"another process of the run stopped ({str(error).splitlines()[0][:200]})")
    return lost


def _interrupts_from_torchrun() -> Callable[[], None]:
    """Make SIGTERM a Ctrl-C, and hear Ctrl-C even where it was inherited as ignored.

    When one rank fails or is killed, torchrun stops the others with SIGTERM; as a Ctrl-C it ends
    the epoch loop the way a Ctrl-C does (checkpoint kept, the resume command said). torchrun
    passes a Ctrl-C on to its workers as SIGINT, and runs them in a session of their own, so an
    ignored SIGINT inherited from a background shell would make them deaf to it.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    if previous[0] == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))

    def restore() -> None:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])

    return restore


def agree(error: BaseException | None) -> None:
    """Every rank calls this once its setup is done (`error` None) or has failed (`error`).

    All ranks then raise the error of the lowest failing rank, if any: the failing rank its own
    exception, the others a CifarError naming that rank. A rank-specific problem (one machine
    lacks the dataset, say) is then said once, by rank 0, and no rank waits for a dead one.
    """
    if not active() or _SESSION.agreed:
        return
    _SESSION.agreed = True
    reports: list = [None] * world_size()
    mine = (
        None if error is None else (f"{error}" if isinstance(error, CifarError) else f"{type(error).__name__}: {error}")
    )
    dist.all_gather_object(reports, mine)
    failed = [(r, message) for r, message in enumerate(reports) if message is not None]
    if not failed or error is not None and failed[0][0] == rank():
        return  # nothing failed, or the caller raises its own error
    who, message = failed[0]
    raise CifarError(f"process {who} of {world_size()} failed: {message}")


# ----------------------------------------------------------------------------- a rank's device and data


def device_for_rank(device: torch.device) -> torch.device:
    """`device`, or under torchrun on CUDA the GPU numbered $LOCAL_RANK: one GPU per process."""
    if device.type != "cuda" or not launched():
        return device
    local, count = int(os.environ.get(LOCAL_RANK_ENV, "0")), torch.cuda.device_count()
    if local >= count:
        raise ConfigError(
            f"process {rank()} needs GPU {local}, but this machine has {count}; start at most {count} "
            f"processes per machine (torchrun --nproc-per-node={count}), or train with --device cpu"
        )
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def check_batches(n_train: int, batch_size: int, drop_last: bool) -> None:
    """Refuse a batch that does not split into equal slices: unequal slices would weigh images unequally."""
    if not active():
        return
    n = world_size()
    sizes = {batch_size} | ({n_train % batch_size} if not drop_last and n_train % batch_size else set())
    if batch_size % n:
        raise ConfigError(
            f"batch_size {batch_size} does not split evenly over {n} processes; choose a multiple "
            f"of {n} (--batch-size {batch_size - batch_size % n or n}) or another number of processes"
        )
    if any(size % n for size in sizes):
        raise ConfigError(
            f"the last batch of {n_train} training images ({n_train % batch_size} images) does not "
            f"split evenly over {n} processes; use at least {2 * batch_size} images (--subset) or a "
            f"smaller --batch-size"
        )


def shard_epoch(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    n_train: int,
    batch_size: int,
    drop_last: bool,
    seed: int,
    epoch: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's part of an epoch whose `batches` cut `n_train` images into `batch_size`: rows
    [r*b/N, (r+1)*b/N) of each batch of b, and (`seed_epoch`) its own random stream for dropout.

    Every rank cuts and augments the whole batch, so the shared generator moves exactly as in one
    process, and a checkpoint of any rank's generator continues every rank's.
    """
    if not active():
        yield from batches
        return
    check_batches(n_train, batch_size, drop_last)  # at the first next(): before the first step
    seed_epoch(seed, epoch)
    r, n = rank(), world_size()
    for x, y in batches:
        size = len(x) // n
        yield x[r * size : (r + 1) * size], y[r * size : (r + 1) * size]


def seed_epoch(seed: int, epoch: int) -> None:
    """Give each rank its own global random stream for the epoch (dropout), a function of (seed, epoch, rank).

    Without it all ranks would draw the same dropout masks for their different slices; as a pure
    function of the epoch it needs no checkpointed state, so a resume stays exact. (Dropout masks
    then differ from a single process's, which draws them for the whole batch at once.)
    """
    if active():
        torch.manual_seed((int(seed) * 1_000_003 + int(epoch)) * 4099 + rank())


# ----------------------------------------------------------------------------- collectives


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all ranks (a copy); `tensor` itself in a single process."""
    if not active():
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total


def all_ranks(mask: torch.Tensor) -> torch.Tensor:
    """A boolean mask that is True where it is True on every rank, so all ranks decide alike."""
    if not active():
        return mask
    agreed = mask.to(torch.uint8)
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
    return agreed.bool()


def epoch_totals(mean_loss: float, correct: torch.Tensor, seen: int) -> tuple[float, torch.Tensor, int]:
    """The global batch's epoch numbers from each rank's: mean loss averaged (equal slices), counts summed."""
    if not active():
        return mean_loss, correct, seen
    totals = sum_across(torch.tensor([mean_loss, float(correct), float(seen)], dtype=torch.float64))
    return totals[0].item() / world_size(), totals[1].to(correct), int(totals[2].item())


def broadcast_tensors(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite `tensors` in place with rank 0's."""
    if active():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


# ----------------------------------------------------------------------------- the model


def parallel(model: nn.Module, device: torch.device, also: Iterable[torch.Tensor] = ()) -> nn.Module | None:
    """The DistributedDataParallel wrapper that trains `model`, or None outside a run on several processes.

    Called once every rank has built (or restored) its model: the ranks agree that setup
    succeeded; rank 0's weights and buffers, and the tensors in `also` (a weight average), are
    given to every rank. Each rank fits the whitening from the same images, so they agree already
    (tests/runs/test_distributed.py checks it); the broadcast makes that independent of the BLAS or GPU.
    """
    agree(None)
    if not active():
        return None
    broadcast_tensors([*model.state_dict().values(), *also])
    _SESSION.swapped += sync_batch_norms(model)
    device_ids = [device.index] if device.type == "cuda" else None
    # Buffers (BatchNorm statistics) stay equal by themselves: synchronised BatchNorm updates them
    # from the global batch on every rank, so DDP need not broadcast them before every step.
    ddp = nn.parallel.DistributedDataParallel
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp).parameters
        else {"broadcast_buffers": False}
    )  # the older name, deprecated since
    return ddp(model, device_ids=device_ids, **no_buffer_sync)
