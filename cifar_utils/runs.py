"""The run folder: `outputs/runs/<name>/` with config.json, history.csv, metrics.json, model.pt, curves.png.

Everything here reads or writes those files; nothing here trains.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from . import atomic
from .errors import CifarError

CONFIG = "config.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINT = "model.pt"
CURVES = "curves.png"
CHECKPOINT_FORMAT = 1


def prepare_run_dir(run_dir: str | Path, overwrite: bool = False) -> Path:
    """Create the run folder; refuse one that already holds a run unless `overwrite`."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CifarError(f"output path {run_dir} exists and is not a folder; choose another --out")
    held = [name for name in (CONFIG, CHECKPOINT, HISTORY, METRICS) if (run_dir / name).exists()]
    if held and not overwrite:
        raise CifarError(
            f"output folder {run_dir} already holds a run ({', '.join(held)}); pass --overwrite to replace it, "
            f"--resume {run_dir} to continue it, or choose another --out/--name"
        )
    if held:
        for name in (CONFIG, CHECKPOINT, HISTORY, METRICS, CURVES):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


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


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


SEED_TABLE_HEADER = ("Epoch", "Train Loss", "Train Accuracy", "Validation Loss", "Validation Accuracy")


def history_rows(history: list[dict]) -> list[tuple[str, ...]]:
    """The history in the seed's format: losses to 4 decimals, accuracies as percentages."""
    return [(str(h["epoch"]), f"{h['train_loss']:.4f}", _pct(h["train_acc"]), f"{h['val_loss']:.4f}", _pct(h["val_acc"]))
            for h in history]


def history_table(history: list[dict]) -> str:
    """A markdown table in the seed's format: Epoch | Train Loss | Train Accuracy | Validation ..."""
    lines = ["| " + " | ".join(SEED_TABLE_HEADER) + " |", "|" + "---|" * len(SEED_TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in history_rows(history)]
    return "\n".join(lines)


def history_frame(history: list[dict]):
    """The seed-format table as a pandas DataFrame (for notebooks)."""
    import pandas as pd

    return pd.DataFrame(history_rows(history), columns=SEED_TABLE_HEADER).set_index("Epoch")


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, payload: dict) -> None:
    atomic.torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint without running any code from it (weights_only=True)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CifarError(f"checkpoint {path} not found; is {path.parent} a run folder that finished at least one epoch?")
    if path.stat().st_size == 0:
        raise CifarError(f"checkpoint {path} is empty (0 bytes); retrain, or resume from a good copy")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged file can fail inside torch.load in many ways; all mean "unreadable"
        reason = _load_failure(exc)
        if "GLOBAL" in reason:  # weights_only refused a class or function before calling it
            raise CifarError(f"checkpoint {path} holds code, not only weights ({reason}); refused without running "
                             f"it: load only checkpoints this project wrote") from None
        raise CifarError(f"checkpoint {path} is corrupt or truncated and cannot be loaded ({reason}); "
                         f"retrain, or resume from a good copy") from None
    if (not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT
            or not {"model", "config"} <= set(payload)):
        raise CifarError(f"checkpoint {path} is not a cifar_utils checkpoint; retrain to create one")
    return payload


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
        raise CifarError(f"cannot resume {run_dir}: it is not a run folder (no {CONFIG}, no {CHECKPOINT}); "
                         f"give the folder a run was trained into, e.g. outputs/runs/<name>")
    if not (run_dir / CHECKPOINT).exists():
        raise CifarError(f"cannot resume {run_dir}: it holds no checkpoint ({CHECKPOINT}) because its first epoch "
                         f"never finished; train it again with --out {run_dir} --overwrite")
    payload = load_checkpoint(run_dir / CHECKPOINT)
    missing = sorted({"optimizer", "history", "rng"} - set(payload))
    if missing:
        raise CifarError(f"cannot resume {run_dir}: its checkpoint lacks the training state ({', '.join(missing)})")
    return payload


def _weights_mismatch(expected: dict, saved: dict) -> str:
    missing, unexpected = expected.keys() - saved.keys(), saved.keys() - expected.keys()
    reshaped = [k for k in expected.keys() & saved.keys()
                if not isinstance(saved[k], torch.Tensor) or saved[k].shape != expected[k].shape]
    return f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape"


@dataclass
class LoadedRun:
    run_dir: Path
    config: "object"  # TrainConfig
    model: torch.nn.Module
    history: list[dict]
    metrics: dict | None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The trained model of a run folder, with its config, history and metrics."""
    from .models import build_model
    from .training import TrainConfig

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CifarError(f"run folder {run_dir} does not exist; train one first (python -m cifar_utils train --out {run_dir})")
    payload = load_checkpoint(run_dir / CHECKPOINT)
    config = TrainConfig.from_dict(payload["config"])
    model = build_model(config.model, channels_last=config.channels_last, **config.model_kwargs)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise CifarError(f"checkpoint {run_dir / CHECKPOINT} does not match model {config.model!r} "
                         f"({_weights_mismatch(model.state_dict(), payload['model'])}); it was saved by another "
                         f"architecture or version: retrain") from None
    model.to(device).eval()
    metrics = read_json(run_dir / METRICS) if (run_dir / METRICS).exists() else None
    return LoadedRun(run_dir, config, model, list(payload.get("history", [])), metrics)
