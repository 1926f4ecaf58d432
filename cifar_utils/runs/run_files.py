"""The run folder: `outputs/runs/<name>/` with config.json, history.csv, metrics.json, model.pt, curves.png
(and analysis.json once notebook 03 has looked at it). Finding run folders, reading and writing
their files, and the one record of a run that training returns and loading gives back.

One process writes a run folder at a time (`holds_run_folder`: a lock file beside it). An
overwrite trains into a staging folder beside the old run and takes its place only once it holds
its first checkpoint (`prepare_run_dir`, `take_place`), so the old run stays whole until then and
nothing of it survives after. Nothing here trains.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import cpu
from ..core.config import TrainConfig, recipe_config
from ..core.evaluation import PRECISION_DTYPES, precision_name, resolve_device, with_precision
from ..core.models import build_model
from ..errors import CifarError, ConfigError, DiskError, disk_error
from . import atomic, distributed, locks

CONFIG = "config.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINT = "model.pt"
CURVES = "curves.png"
ANALYSIS = "analysis.json"  # notebook 03's look at the run's test predictions
CHECKPOINT_FORMAT = 1
EXPERIMENT_RUNS = Path("experiments") / "runs"  # under an outputs folder: the experiments' run records, by digest


# Settings that say how a run executed, not what it learned: a change in them keeps the run's name.
HOW_IT_RAN = ("seed", "device", "precision", "channels_last", "eval_batch_size", "model")
SMOKE_SETTINGS = ("epochs", "train_subset")  # what smoke mode moves; "-smoke" names them


def _name_part(value) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def default_run_name(recipe: str, config: TrainConfig, smoke: bool = False) -> str:
    """<recipe>-<model>-seed<seed>, then what differs from the recipe, so a changed parameter names a new folder.

    Up to three changed settings are spelt out (`seed-seed_cnn-seed0-epochs1-train_subset2000`); more, or long
    values, become `-cfg<digest>` of the changes. Smoke runs end in "-smoke" (its epochs and subset unnamed).
    """
    base = recipe_config(recipe, model=config.model).to_dict()
    mine = config.to_dict()
    changed = {
        k: v
        for k, v in sorted(mine.items())
        if k not in HOW_IT_RAN and v != base.get(k) and not (smoke and k in SMOKE_SETTINGS)
    }
    name = f"{recipe}-{config.model}-seed{config.seed}"
    parts = [f"{k}{_name_part(v)}" for k, v in changed.items()]
    if len(parts) > 3 or sum(map(len, parts)) > 60:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]
        parts = [f"cfg{digest}"]
    return "-".join([name, *parts]) + ("-smoke" if smoke else "")


def config_digest(config: TrainConfig) -> str:
    """A short digest of everything in the configuration, with precision "auto" as it resolves on this
    machine: equal configurations, equal digests, and runs at different precisions never share a folder."""
    text = json.dumps(with_precision(config, resolve_device(config.device)).to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def digest_folder(store: str | Path, config: TrainConfig) -> Path:
    """An experiment's run record of `config`: <store>/<config_digest>."""
    return Path(store) / config_digest(config)


def prepare_run_dir(run_dir: str | Path, overwrite: bool = False) -> Path:
    """The folder to write a new run into; call it holding the run folder's lock (`holds_run_folder`).

    A folder that already holds a run is refused unless `overwrite`; then the new run goes into a
    staging folder beside it (returned), which `take_place` moves over the old run once it holds
    its first checkpoint. Otherwise `run_dir` itself is created and returned.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CifarError(f"output path {run_dir} exists and is not a folder; choose another --out")
    held = [name for name in (CONFIG, CHECKPOINT, HISTORY, METRICS, ANALYSIS) if (run_dir / name).exists()]
    if held and not overwrite:
        raise CifarError(
            f"output folder {run_dir} already holds a run ({', '.join(held)}); pass --overwrite to replace it, "
            f"--resume {run_dir} to continue it, or choose another --out/--name"
        )
    try:
        if overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
            place = run_dir.absolute()
            return Path(tempfile.mkdtemp(prefix=f".{place.name}.staging-pid{os.getpid()}-", dir=place.parent))
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(run_dir, exc, "create") from None
    return run_dir


def take_place(write_dir: str | Path, run_dir: str | Path) -> Path:
    """After a checkpoint: move a staged run (see `prepare_run_dir`) over the old one in `run_dir`, whose files
    all go, analysis.json included. Returns `run_dir`, where the run is written from now on; a no-op once there."""
    write_dir, run_dir = Path(write_dir), Path(run_dir)
    if write_dir != run_dir:
        place = run_dir.absolute()
        atomic.replace_folder(write_dir, run_dir, trash=place.parent / f".{place.name}.replaced-pid{os.getpid()}")
    return run_dir


def _leftovers(run_dir: Path) -> list[tuple[str, Path]]:
    """("staging" | "replaced", folder) that writers of `run_dir` left beside it (see prepare_run_dir, take_place)."""
    run_dir = run_dir.absolute()
    pattern = re.compile(rf"\.{re.escape(run_dir.name)}\.(staging|replaced)-pid\d+(-[a-z0-9_]+)?")
    found = [(pattern.fullmatch(p.name), p) for p in run_dir.parent.iterdir()] if run_dir.parent.is_dir() else []
    return [(match.group(1), path) for match, path in found if match]


def _remove_leftovers(run_dir: Path) -> None:
    """What writers of `run_dir` that are no longer running left: a staging folder, a half-done replacement,
    temporary files. Called holding the lock, so no live writer of this folder owns any of them."""
    for kind, path in _leftovers(run_dir):
        if kind == "replaced":
            atomic.restore_folder(run_dir, path)  # killed between replace_folder's two renames (not on Linux)
        else:
            shutil.rmtree(path, ignore_errors=True)
    if run_dir.is_dir():
        atomic.remove_temporaries(run_dir)


def holds_run_folder(fit):
    """Decorate `fit`: while it runs, no other process writes its `run_dir` (a lock file beside the folder); with
    `wait=True` it waits for the other writer instead of refusing. However the call ends, what a writer that is
    no longer running left beside the folder (the staging folder of an overwrite, say) is removed."""

    @functools.wraps(fit)
    def locked(*args, **kwargs):
        run_dir = kwargs.get("run_dir")
        if run_dir is None or (kwargs.get("resume") and not Path(run_dir).is_dir()) or not distributed.is_main():
            return fit(*args, **kwargs)  # nothing to lock: no folder, a resume of none (refused), or not rank 0
        lock = locks.beside(run_dir)
        with locks.held(lock, f"run folder {run_dir}", kwargs.get("wait", False), kwargs.get("log", print)):
            _remove_leftovers(Path(run_dir))
            try:
                return fit(*args, **kwargs)
            except DiskError as exc:
                if any(kind == "staging" for kind, _ in _leftovers(Path(run_dir))):
                    raise DiskError(
                        f"{exc}; the run already in {run_dir} is untouched (replacing a run needs room "
                        f"for both until the new one's first checkpoint)"
                    ) from None
                raise
            finally:
                _remove_leftovers(Path(run_dir))

    return locked


def write_json(path: Path, payload: dict) -> None:
    atomic.write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CifarError(f"{path} not found; is {Path(path).parent} a run folder?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CifarError(f"{path} is not valid JSON ({exc}); the run folder is damaged") from None


def write_history(path: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    atomic.write_text(path, buffer.getvalue())


def read_history(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, payload: dict) -> None:
    atomic.torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint without running any code from it (weights_only=True)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CifarError(
            f"checkpoint {path} not found; is {path.parent} a run folder that finished at least one epoch?"
        )
    if path.stat().st_size == 0:
        raise CifarError(f"checkpoint {path} is empty (0 bytes); retrain, or resume from a good copy")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged file can fail inside torch.load in many ways; all mean "unreadable"
        reason = _load_failure(exc)
        if "GLOBAL" in reason:  # weights_only refused a class or function before calling it
            raise CifarError(
                f"checkpoint {path} holds code, not only weights ({reason}); refused without running "
                f"it: load only checkpoints this project wrote"
            ) from None
        raise CifarError(
            f"checkpoint {path} is corrupt or truncated and cannot be loaded ({reason}); "
            f"retrain, or resume from a good copy"
        ) from None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != CHECKPOINT_FORMAT
        or not {"model", "config"} <= set(payload)
    ):
        raise CifarError(f"checkpoint {path} is not a cifar_utils checkpoint; retrain to create one")
    return payload


def drop_training_state(run_dir: str | Path) -> None:
    """Rewrite a finished run's checkpoint with what analysing it needs (config, weights, history), without
    the optimizer's, averager's and random generators' state: half the size or less, for a run kept in the
    repository. The run can no longer be resumed, which a finished run never needs."""
    path = Path(run_dir) / CHECKPOINT
    payload = load_checkpoint(path)
    save_checkpoint(path, {k: payload[k] for k in ("config", "model", "history") if k in payload})


def _load_failure(exc: Exception) -> str:
    """The telling line of a torch.load error, e.g. 'Unsupported operand 203' rather than its preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines if "GLOBAL" in line or line.startswith("Unsupported")]
    reason = (specific or lines or [""])[0].split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {reason}"[:200] if reason else type(exc).__name__


def resume_checkpoint(run_dir: str | Path) -> dict:
    """The checkpoint that `train --resume run_dir` continues from, or a CifarError saying why there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CifarError(f"cannot resume {run_dir}: no such run folder")
    if not (run_dir / CHECKPOINT).exists() and not (run_dir / CONFIG).exists():
        raise CifarError(
            f"cannot resume {run_dir}: it is not a run folder (no {CONFIG}, no {CHECKPOINT}); "
            f"give the folder a run was trained into, e.g. outputs/runs/<name>"
        )
    if not (run_dir / CHECKPOINT).exists():
        raise CifarError(
            f"cannot resume {run_dir}: it holds no checkpoint ({CHECKPOINT}) because its first epoch "
            f"never finished; train it again with --out {run_dir} --overwrite"
        )
    payload = load_checkpoint(run_dir / CHECKPOINT)
    missing = sorted({"optimizer", "history", "rng"} - set(payload))
    if missing:
        raise CifarError(f"cannot resume {run_dir}: its checkpoint lacks the training state ({', '.join(missing)})")
    return payload


def _weights_mismatch(expected: dict, saved: dict) -> str:
    missing, unexpected = expected.keys() - saved.keys(), saved.keys() - expected.keys()
    reshaped = [
        k
        for k in expected.keys() & saved.keys()
        if not isinstance(saved[k], torch.Tensor) or saved[k].shape != expected[k].shape
    ]
    return f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape"


@dataclass
class RunRecord:
    """One run: what `fit` returns and what `load_run` reads back from a run folder."""

    model: torch.nn.Module
    config: TrainConfig
    history: list[dict]
    metrics: dict | None
    run_dir: Path | None
    reused: bool = False  # loaded from a finished run of the same configuration, not trained
    resumed_after: int | None = None  # the epochs an interrupted run had finished when this process continued it


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> RunRecord:
    """The trained model of a run folder, with its config, history and metrics."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CifarError(
            f"run folder {run_dir} does not exist; train one first (python -m cifar_utils train --out {run_dir})"
        )
    payload = load_checkpoint(run_dir / CHECKPOINT)
    config = TrainConfig.from_dict(payload["config"])
    model = build_model(config.model, channels_last=config.channels_last, **config.model_kwargs)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise CifarError(
            f"checkpoint {run_dir / CHECKPOINT} does not match model {config.model!r} "
            f"({_weights_mismatch(model.state_dict(), payload['model'])}); it was saved by another "
            f"architecture or version: retrain"
        ) from None
    model.to(device).eval()
    metrics = read_json(run_dir / METRICS) if (run_dir / METRICS).exists() else None
    return RunRecord(
        model=model, config=config, history=list(payload.get("history", [])), metrics=metrics, run_dir=run_dir
    )


_DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def dtype_name(dtype: str | None) -> str | None:
    """ "fp32", "bf16" or "fp16" for a dtype as a run's provenance names it ("bfloat16"); None if it names none."""
    name = _DTYPE_NAMES.get(dtype, dtype)
    return name if name in PRECISION_DTYPES else None


def recorded_precision(saved: TrainConfig, run_dir, device: torch.device) -> TrainConfig:
    """A saved config with its precision as the run used it.

    Runs saved before the precision was resolved in the config say "auto"; their config.json
    provenance names the dtype they ran in. Failing that, "auto" is decided here.
    """
    if saved.precision != "auto":
        return saved
    try:
        dtype = (read_json(Path(run_dir) / CONFIG).get("provenance") or {}).get("precision")
    except CifarError:
        dtype = None
    name = _DTYPE_NAMES.get(dtype, dtype)
    return dataclasses.replace(saved, precision=name if name in PRECISION_DTYPES else precision_name("auto", device))


# ----------------------------------------------------------------------------- notebook 03's analysis


def write_analysis(run_dir: str | os.PathLike, summary: dict) -> Path:
    path = Path(run_dir) / ANALYSIS
    atomic.write_text(path, json.dumps(summary, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- finding runs


def list_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Run folders (holding config.json) under `runs_dir`, the most recently written first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    # A hidden folder is a run being staged or replaced (see prepare_run_dir), not a run.
    found = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / CONFIG).is_file()]
    return sorted(found, key=lambda p: (-_run_mtime(p), p.name))


def _run_mtime(run_dir: Path) -> float:
    return max(f.stat().st_mtime for f in run_dir.iterdir() if f.is_file())


def _folders(runs_dir) -> list[Path]:
    """One folder or a search path of folders (a notebook by hand: its scratch runs, then the committed ones)."""
    if isinstance(runs_dir, (str, os.PathLike)):
        return [Path(runs_dir)]
    return [Path(p) for p in runs_dir]


def resolve_runs(names, runs_dir) -> list[Path]:
    """Run folders from names (looked up in `runs_dir`, one folder or several in order) or paths; a missing one
    is a CifarError naming it."""
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    folders = _folders(runs_dir)
    resolved = []
    for name in names:
        path = Path(name).expanduser()
        if not path.is_dir() and not path.is_absolute():
            path = next((f / path for f in folders if (f / path).is_dir()), path)
        if not path.is_dir():
            present = [p.name for f in folders for p in list_runs(f)]
            raise CifarError(
                f"run folder {name!s} does not exist (looked in {', '.join(map(str, folders))}); "
                f"runs present: {', '.join(present) or 'none'}"
            )
        if not (path / CHECKPOINT).is_file():
            raise CifarError(
                f"{path} is not a finished run (no {CHECKPOINT}); train it first, or drop it from the list"
            )
        if path not in resolved:
            resolved.append(path)
    return resolved


def select_runs(names, runs_dir) -> list[Path]:
    """The runs a notebook analyses: `names` (see resolve_runs), or None for every run in the last folder of
    `runs_dir` (one folder, or a search path whose last folder is the committed runs), newest first."""
    last = _folders(runs_dir)[-1]
    found = resolve_runs(names, runs_dir) if names else list_runs(last)
    if not found:
        raise CifarError(
            f"no runs found in {last}; train one first (run notebooks/02_training.ipynb, or "
            f"python -m cifar_utils train), or name run folders in RUNS"
        )
    return found


def filter_runs(run_dirs, where: dict | None = None) -> list[Path]:
    """The runs whose config.json matches every {config field: value or list of values} in `where`
    (e.g. {"model": "fast", "augment": ["none", "flip"]}); None or {} keeps them all. A field that no
    TrainConfig has is a ConfigError naming the fields there are."""
    if not where:
        return list(run_dirs)
    if not isinstance(where, dict):
        raise ConfigError(
            f"a run filter is a dict of config fields and values, e.g. {{'model': 'fast'}}; got {where!r}"
        )
    unknown = sorted(set(where) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(
            f"cannot filter runs on {', '.join(unknown)}: not a training knob; use config fields such as "
            f"model, optimizer, lr, augment, epochs, seed"
        )
    wanted = {k: (list(v) if isinstance(v, (list, tuple, set)) else [v]) for k, v in where.items()}
    kept = []
    for run_dir in run_dirs:
        config = read_json(Path(run_dir) / CONFIG)
        if all(config.get(k) in values for k, values in wanted.items()):
            kept.append(Path(run_dir))
    return kept


# ----------------------------------------------------------------------------- resuming


def config_differences(saved: dict, wanted: dict) -> list[str]:
    keys = sorted(set(saved) | set(wanted))
    return [f"{k}: {saved.get(k)!r} in the run, {wanted.get(k)!r} now" for k in keys if saved.get(k) != wanted.get(k)]


def resumed_config(config: TrainConfig | None, checkpoint: dict, run_dir, log) -> TrainConfig:
    """The saved config, at the precision the run began with; `config`, if given, must agree with it."""
    saved = TrainConfig.from_dict(checkpoint["config"])
    device = resolve_device((config or saved).device)
    saved = recorded_precision(saved, run_dir, device)
    if config is not None:
        diff = config_differences(saved.to_dict(), with_precision(config.validate(), device).to_dict())
        if diff:
            raise ConfigError(
                f"cannot resume {run_dir} with a different configuration ({'; '.join(diff)}); "
                f"resume without changing them, or train a new run into another --out"
            )
    here = precision_name("auto", device)
    if saved.precision != here:  # the run keeps its precision; mixing two in one run is never silent
        slow = (
            "; this CPU has no native bf16, so expect it to be slow"
            if (saved.precision == "bf16" and device.type == "cpu" and not cpu.has_native_bf16())
            else ""
        )
        log(
            f"continuing {run_dir} in {saved.precision}, the precision it began with "
            f"(auto would choose {here} on this machine){slow}"
        )
    return saved
