"""Records made on another machine, at another precision: what to call them when they are reused here.

A clone's committed runs were trained where precision "auto" meant bf16; on a CPU where it means fp32
they are reused as they are (training.fit_or_reuse, experiments.reusable_run), and every place that
shows them says so: the log line of each, and one line for the whole report.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.config import TrainConfig
from ..core.evaluation import precision_name
from ..errors import CifarError
from .run_files import CONFIG, METRICS, dtype_name, read_json


def _where(prov: dict) -> str:
    where = prov.get("cpu") or prov.get("device_name") or "another machine"
    return where + (f" (ISA class {prov['cpu_isa']})" if prov.get("cpu_isa") else "")


def made_elsewhere(config: TrainConfig, prov: dict, device: torch.device) -> str | None:
    """'made in bf16 on <CPU> (ISA class amx)' for a run whose precision is not what "auto" means on `device`
    (a record another machine made, reused here as it is); None when it is."""
    if config.precision == precision_name("auto", device):
        return None
    return f"made in {config.precision} on {_where(prov)}"


def folder_made_elsewhere(folder, device: torch.device) -> str | None:
    """`made_elsewhere` of the run in `folder`, from its records alone; None when made here or unreadable."""
    found = _precision_and_place(folder, precision_name("auto", device))
    if found is None or found[0] == precision_name("auto", device):
        return None
    return f"made in {found[0]} on {found[1]}"


def _precision_and_place(folder, here: str) -> tuple[str, str] | None:
    try:
        saved = read_json(Path(folder) / CONFIG)
        prov = read_json(Path(folder) / METRICS).get("provenance") or {}
    except CifarError:
        return None
    precision = saved.get("precision")
    if precision == "auto":  # runs from before precisions were recorded: the dtype is in the provenance
        precision = dtype_name((saved.get("provenance") or {}).get("precision")) or here
    return precision, _where(prov)


def precision_census(folders, device: torch.device) -> str | None:
    """One line on the run folders made at a precision other than what "auto" means on `device`, and where
    ('71 of the 72 run records were made in bf16 on <CPU> (ISA class amx) ...'); None when there are none."""
    here, elsewhere, total = precision_name("auto", device), {}, 0
    for folder in folders:
        found = _precision_and_place(folder, here)
        if found is None:
            continue
        total += 1
        if found[0] != here:
            elsewhere[found] = elsewhere.get(found, 0) + 1
    if not elsewhere:
        return None
    made = "; ".join(f"{n} in {p} on {where}" for (p, where), n in sorted(elsewhere.items(), key=lambda kv: -kv[1]))
    return (
        f"{sum(elsewhere.values())} of the {total} run records were made at another precision than this machine's "
        f'("auto" is {here} here) and are reused as they are: {made}; --retrain trains them again here'
    )
