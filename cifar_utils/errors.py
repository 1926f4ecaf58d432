"""The exceptions a user can do something about.

The CLI turns a `CifarError` into a one-line message and a non-zero exit code, so every
message raised with it must say what is wrong and what to do about it.
"""

from __future__ import annotations

import errno
import os


class CifarError(Exception):
    """A problem with the user's input, data or files (not a bug in this library)."""


class DatasetError(CifarError):
    """The CIFAR-10 files are missing, truncated, altered or unreadable."""


class ConfigError(CifarError, ValueError):
    """A configuration value is out of range or unknown."""


class NonFiniteLoss(CifarError):
    """Training diverged: the loss became NaN or infinite."""


class TrainingInterrupted(CifarError):
    """Ctrl-C during training. `saved_epoch` epochs are in the checkpoint of `run_dir` (None: no folder).

    The message says how to continue from Python; the CLI replaces it with the command to type.
    """

    def __init__(self, run_dir, epoch: int, epochs: int, saved_epoch: int):
        self.run_dir, self.epoch, self.epochs, self.saved_epoch = run_dir, epoch, epochs, saved_epoch
        super().__init__(
            self.describe(
                f"fit(config, run_dir={str(run_dir)!r}, resume=True)",
                f"fit(config, run_dir={str(run_dir)!r}, overwrite=True)",
            )
        )

    def describe(self, resume_how: str, restart_how: str) -> str:
        """The message, naming `resume_how` (a call or a command) or, before the first checkpoint, `restart_how`."""
        where = f"in epoch {self.epoch} of {self.epochs}" if self.epoch <= self.epochs else "after its last epoch"
        if self.run_dir is None:
            return f"training interrupted {where}; nothing was saved (no run folder was given)"
        if not self.saved_epoch:
            return f"training interrupted {where}, before its first checkpoint, so there is nothing to resume: {restart_how}"
        return (
            f"training interrupted {where}; the checkpoint after epoch {self.saved_epoch} is in {self.run_dir}; "
            f"continue with: {resume_how}"
        )


class ReportInterrupted(CifarError):
    """Ctrl-C during a report: the previous report is untouched (the CLI exits with 130)."""


class DiskError(CifarError):
    """A file or folder could not be written: no space, no permission, a read-only disk."""


class FolderBusy(CifarError):
    """Another process is writing the same run folder or report."""


# What an OSError means to the user, and what they can do about it.
_DISK_CAUSES = {
    errno.ENOSPC: ("no space left on the device", "free some space or choose another --out"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or choose another --out"),
    errno.EROFS: ("the file system is read-only", "choose another --out on a writable disk"),
    errno.EACCES: ("permission denied", "choose another --out you can write to, or change the folder's permissions"),
    errno.EPERM: (
        "operation not permitted",
        "choose another --out you can write to, or change the folder's permissions",
    ),
}


def os_error_cause(exc: OSError) -> str:
    """What an OSError means in a few words, with its errno name: 'no space left on the device (ENOSPC)'."""
    code = errno.errorcode.get(exc.errno or 0)
    cause = (
        _DISK_CAUSES[exc.errno][0]
        if exc.errno in _DISK_CAUSES
        else (exc.strerror or str(exc) or type(exc).__name__).lower()
    )
    return f"{cause} ({code})" if code else cause


def disk_error(path: str | os.PathLike, exc: OSError, doing: str = "write") -> DiskError:
    """The one line for an OSError met while `doing` `path`: what failed, where, why, and what to do."""
    remedy = _DISK_CAUSES.get(exc.errno, ("", "check the disk and the folder, or choose another --out"))[1]
    return DiskError(f"cannot {doing} {path}: {os_error_cause(exc)}; {remedy}")
