"""Where an Optuna study lives, and how a trial whose worker died ends FAILED instead of RUNNING forever.

A storage is a journal file (the default, one machine; `outputs/experiments/studies.journal`, notebook 05's) or any
database URL that Optuna accepts (`postgresql://...`, `mysql://...`, `sqlite:///...`), which many
machines can share.

A worker killed mid-trial (SIGKILL, a lost machine) cannot tell the storage anything, so the
trial would stay RUNNING: silently lost to a results table, and never counted as done. Two ways
out, one per kind of storage:

- Databases: Optuna's heartbeat. Every running trial's worker writes a heartbeat every
  `heartbeat_interval` seconds; a trial without one for `grace_period` seconds is failed by the
  next worker that starts a trial (`optuna.storages.fail_stale_trials`).
- Journal files: Optuna 5's journal storage has no heartbeat (only RDBStorage implements it). Each
  trial records its worker (host, boot, pid and the process's start time, so a reused pid is not
  mistaken for it); `fail_orphaned_trials`, run by every worker before each trial, fails the
  RUNNING trials whose worker process on this host is gone. A journal shared by several machines
  can only be swept by a worker on the dead one's host: for many machines, use a database.

Either way the failed trial is queued once more (Optuna's RetryHeartbeatStaleTrialCallback, with
the same parameters, marked with the number it retries), and the first worker to fail a trial is
the only one that queues its retry: the storage refuses a second writer, so no trial runs twice.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url  # optuna's own dependency

from ..errors import CifarError
from ..paths import outputs_dir

OWNER_ATTR = "worker"  # user attribute of a trial: who runs it (see owner())
RETRIED_ATTR = "failed_trial"  # system attribute Optuna's retry callback sets: the number of the first failed try
HEARTBEAT_INTERVAL = 60  # seconds between a running trial's heartbeats (databases)
GRACE_PERIOD = 180  # seconds without a heartbeat before a trial counts as dead: a few missed beats, not one


def default_storage() -> Path:
    """The journal file studies live in unless a storage is named: <outputs>/experiments/studies.journal, the one
    notebook 05 uses in the report, so a worker started without --storage joins the report's study."""
    return outputs_dir() / "experiments" / "studies.journal"


def is_database(storage: str | os.PathLike | None) -> bool:
    return storage is not None and "://" in str(storage)


def describe(storage: str | os.PathLike | None) -> str:
    """The storage as it may be printed: a database URL without its password."""
    if storage is None:
        return str(default_storage())
    if not is_database(storage):
        return str(storage)
    try:
        return make_url(str(storage)).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say only its scheme
        return str(storage).split("://", 1)[0] + "://..."


def _retry_callback(retries: int | None) -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=retries)


def open_storage(
    storage: str | os.PathLike | None = None,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
    retries: int | None = 1,
):
    """An Optuna storage: a database URL (with heartbeats) or a journal file path (None: `default_storage()`).

    `retries`: how many times a trial whose worker died is queued again (0: never; None: always).
    """
    if heartbeat_interval < 1 or grace_period <= heartbeat_interval:
        raise CifarError(
            f"the heartbeat interval must be at least 1 s and the grace period longer than it, got "
            f"{heartbeat_interval} and {grace_period} s"
        )
    if retries is not None and retries < 0:
        raise CifarError(f"retries must be 0 or more (or None for no limit), got {retries}")
    if is_database(storage):
        try:
            with warnings.catch_warnings():  # the heartbeat arguments are marked experimental
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    str(storage),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=_retry_callback(retries) if retries != 0 else None,
                )
        except ImportError as exc:  # Optuna's own ImportError, caused by the driver SQLAlchemy chose for the URL
            missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "its driver"
            raise CifarError(
                f"the database driver {missing!r} for {describe(storage).split('://')[0]}:// URLs is not "
                f"installed; install it (PostgreSQL: pip install 'psycopg[binary]') or use a journal file "
                f"as --storage"
            ) from None
        except Exception as exc:  # SQLAlchemy's errors: bad URL, refused connection, wrong password, no database
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CifarError(
                f"cannot open the study storage {describe(storage)}: {cause}; check the URL, that the "
                f"database server is running and that the database exists"
            ) from None
    path = Path(storage).expanduser() if storage is not None else default_storage()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise CifarError(
            f"cannot open the study journal {path}: {exc.strerror or exc}; choose a writable --storage path"
        ) from None


# ----------------------------------------------------------------------------- who runs a trial


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner(pid: int | None = None) -> dict:
    """This process as a trial's worker: host, boot, pid, and the process's start time (clock ticks since boot)."""
    pid = os.getpid() if pid is None else pid
    fields = _proc_stat(pid)
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid": pid,
        "started": fields[19] if fields else None,
    }  # field 22 of stat: the start time, which a reused pid changes


def owner_alive(record: dict | None) -> bool | None:
    """Whether a trial's worker still runs: True, False, or None when this host cannot tell (another machine)."""
    if not isinstance(record, dict) or record.get("host") != socket.gethostname() or record.get("boot") != _boot_id():
        return None
    pid = int(record["pid"])
    if record.get("started") is None or not Path("/proc").is_dir():  # no /proc (macOS): does the pid exist at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == record["started"]  # Z: killed, not yet reaped


def fail_orphaned_trials(study: optuna.Study, retries: int | None = 1) -> list[int]:
    """Fail (and queue again, up to `retries` times) the RUNNING trials whose worker on this host is gone.

    Returns the numbers of the trials this call failed. Trials of other hosts, and trials that have
    not recorded a worker yet, are left alone. For journal storages; databases use the heartbeat.
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_alive(trial.user_attrs.get(OWNER_ATTR)) is not False:
            continue
        try:
            frozen = study.tell(trial.number, state=TrialState.FAIL)
        except (
            UpdateFinishedTrialError,
            ValueError,
        ):  # another worker finished or failed it first: its retry, not ours
            continue
        failed.append(trial.number)
        if retries != 0:
            _retry_callback(retries)(study, frozen)
    return failed


def fail_stale_trials(study: optuna.Study, retries: int | None = 1) -> list[int]:
    """End the trials of dead workers: the heartbeat's verdict on a database, the owner check on a journal."""
    if isinstance(study._storage, JournalStorage):  # noqa: SLF001 (Optuna has no public accessor for a study's storage)
        return fail_orphaned_trials(study, retries)
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return sorted(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in running)


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the failed trial this one retries (None: a trial of its own)."""
    return trial.system_attrs.get(RETRIED_ATTR)
