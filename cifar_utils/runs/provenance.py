"""Where a number came from: commit, library versions, device, time."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path

import torch

from ..core import allocator
from ..core.cpu import cpu_model, isa_class
from .distributed import world_size

_REPO = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The commit of this checkout, with '+dirty' when tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def provenance(device: torch.device) -> dict:
    return {
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu": cpu_model(),
        "cpu_isa": isa_class(),
        "threads": torch.get_num_threads(),
        "allocator": allocator.setting(),
        "processes": world_size(),  # > 1: torchrun ran it on several processes (distributed.py)
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def machine_line(prov: dict, precision: str | None = None) -> str:
    """One line naming where a number was measured: commit, torch, CPU model, ISA class, threads, precision."""
    where = prov["device_name"] if prov.get("device", "cpu") != "cpu" else prov.get("cpu", prov["device_name"])
    parts = [
        f"commit {prov['git_commit']}",
        f"torch {prov['torch']}",
        f"{where}",
        f"ISA class {prov.get('cpu_isa')}",
        f"{prov.get('threads')} threads",
    ]
    if prov.get("allocator"):
        parts.append(f"allocator {prov['allocator']}")
    if precision or prov.get("precision"):
        parts.append(f"precision {precision or prov.get('precision')}")
    return ", ".join(parts) + f", {prov['date']}"
