"""Write files so that a crash never leaves a truncated file where a good one stood.

Everything is written to a temporary file in the destination folder and then renamed over the
target: a rename within one file system is atomic on POSIX, so a reader sees the old file or
the new one, never half of one. A temporary file's name carries its writer's PID, so that the
clean-up after a crash (`remove_temporaries`) never deletes what a live writer is writing.
An OSError on the way (no space, no permission, a read-only disk) becomes one `DiskError`
that names the target, with no temporary file left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from ..errors import disk_error

_TEMPORARY = re.compile(r"\.pid(\d+)\.[^.]*\.tmp$")  # .<name>.pid<PID>.<random>.tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_prefix(name: str) -> str:
    """The start of this process's temporary names for `name`: `.<name>.pid<PID>.`"""
    return f".{name}.pid{os.getpid()}."


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` if the block succeeds."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(target.name), suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise disk_error(target, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # the data must be on disk before the rename is
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    except OSError as exc:  # from the block's own writes too: a full disk shows up in whichever comes first
        raise disk_error(target, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened like this everywhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back until the block ends, so that a group of writes completes.

    Used around a checkpoint and the history that goes with it: an interrupt then lands before
    or after the pair, never between them. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # deliver it to the previous handler now


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (`.<name>.pid<PID>.<random>.tmp`) that writers now dead left in `folder`.

    A file whose writer is still running (this process included) is left alone; one without a
    PID in its name (written by an older version) counts as dead.
    """
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        writer = _TEMPORARY.search(path.name)
        if path.is_file() and not (writer and _alive(int(writer.group(1)))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no harmless way to ask; never delete what might be another's
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def save_figure(fig, target: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the target's suffix."""
    target = Path(target)
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", **kwargs)
    return target


def torch_save(obj, target: str | os.PathLike) -> None:
    import torch

    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        writer = _RecordingWriter(fh)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:  # torch reports a failed write as a bare RuntimeError; the cause is this
                raise writer.error from None
            raise


class _RecordingWriter:
    """A file for torch.save that keeps the OSError of a failed write (a full disk, say)."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


# ----------------------------------------------------------------------------- folders

AT_FDCWD, RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def replace_folder(new: str | os.PathLike, target: str | os.PathLike, trash: str | os.PathLike) -> None:
    """Put folder `new` where folder `target` stands, then delete the old `target`.

    On Linux the two change places in one step (renameat2 RENAME_EXCHANGE), so a crash at any
    moment leaves one complete folder at `target`. Elsewhere `target` is first renamed to
    `trash` and `new` then renamed to `target`: a crash between the two leaves `target` missing
    and the old folder in `trash` (see `restore_folder`).
    """
    new, target, trash = Path(new), Path(target), Path(trash)
    try:
        if not target.exists():  # nothing to replace (the user removed it meanwhile)
            os.replace(new, target)
            return
        if _exchange(new, target):
            shutil.rmtree(new, ignore_errors=True)  # the old target, now under the new one's name
            return
        os.replace(target, trash)
        os.replace(new, target)
    except OSError as exc:
        raise disk_error(target, exc, "replace") from None
    shutil.rmtree(trash, ignore_errors=True)


def restore_folder(target: str | os.PathLike, trash: str | os.PathLike) -> None:
    """After a crash inside `replace_folder`'s two renames: put the old folder back, or delete it."""
    if not Path(target).exists():
        os.replace(trash, target)
    else:
        shutil.rmtree(trash, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the OS or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this file system has no exchange
        return False
    raise OSError(code, os.strerror(code), str(b))
