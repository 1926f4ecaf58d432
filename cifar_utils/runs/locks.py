"""One writer at a time: an OS lock on a lock file while a run folder or a report is written.

The lock is `flock` on a small file that names its holder (PID and command). The operating
system drops it when the holder's file is closed or the process ends in any way, SIGKILL
included, so a crash never leaves a folder locked. Lock files are never deleted: deleting one
while another process waits on it would let two writers in.

A second writer is refused with one line that names the holder, or with `wait=True` (the
CLI's --wait) waits for it to finish. Where `fcntl` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None

from ..errors import FolderBusy, disk_error

REPORT_LOCK = ".report.lock"  # inside a report's output folder


def beside(folder: str | os.PathLike) -> Path:
    """The lock file of a folder that may be replaced as a whole (a run folder): `.<name>.lock` next to it.

    A lock file inside such a folder would be swapped away with it, and the next writer would lock another file.
    """
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def held(lock_file: str | os.PathLike, what: str, wait: bool = False, log=print) -> Iterator[None]:
    """Hold the lock `lock_file` for the block; `what` names the thing it guards in messages ("run folder X")."""
    lock_file = Path(lock_file)
    if fcntl is None:
        yield
        return
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise disk_error(lock_file.parent, exc, "write in") from None
    try:
        _acquire(fd, what, wait, log)
    except BaseException:
        os.close(fd)
        raise
    try:
        _write_holder(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # released: it names nobody now
        os.close(fd)  # this releases the lock


def _acquire(fd: int, what: str, wait: bool, log) -> None:
    if _try_lock(fd):
        return
    holder = _holder(fd)
    if not wait:
        raise FolderBusy(
            f"{what} is being written by another process ({holder}); wait until it finishes, "
            f"add --wait (wait=True in Python) to start when it does, or write elsewhere"
        )
    if log:
        log(f"waiting for {holder} to finish writing {what}")
    fcntl.flock(fd, fcntl.LOCK_EX)  # blocks; Ctrl-C still interrupts it


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int) -> None:
    """Record who holds the lock: the PID and the command line, for the message another writer gets."""
    command = " ".join(shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]).split())  # one line
    text = f"PID {os.getpid()}: {command if len(command) <= 500 else command[:497] + '...'}\n".encode()
    with contextlib.suppress(OSError):  # the name is for messages only; the lock holds without it
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)


def _holder(fd: int, attempts: int = 20) -> str:
    """'PID 1234: python -m cifar_utils train ...', read from the lock file; its holder may not have written it yet."""
    for _ in range(attempts):
        text = os.pread(fd, 1000, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.025)
    return "PID unknown"
