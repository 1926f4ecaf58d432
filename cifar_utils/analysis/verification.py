"""Do the committed run records hold? A reader trains a random sample of them again here and compares.

Every experiment run is kept as records only (config.json, history.csv, metrics.json in
`outputs/experiments/runs/<digest>/`, see experiments.py), and the report rebuilds its tables from
them without training. `verify` picks `n` of them at random, trains each again from its own
config.json into a temporary folder (the committed folder is only read), and judges the result:

- Made on the same kind of machine (a CPU of the same instruction-set class, or the same GPU, and
  the same precision): training is deterministic there, so the reproduction must be identical, bit
  for bit: the same validation accuracy and loss and the same history, epoch by epoch.
- Elsewhere other kernels round differently and the run takes another path, as another seed would:
  it agrees when its validation accuracy is within `SPREAD_FACTOR` seed-to-seed standard deviations
  of the recorded one, that SD pooled over the store's configurations trained on several seeds.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import data as D
from ..core.config import TrainConfig
from ..core.cpu import cpu_model, isa_class
from ..core.evaluation import resolve_device, with_precision
from ..errors import CifarError, ConfigError, NonFiniteLoss
from ..runs import run_files
from ..runs.training import fit
from . import stats

SPREAD_FACTOR = 3  # another machine's reproduction agrees within this many pooled seed-to-seed SDs
COMPARED = ("val_accuracy", "val_loss")  # the final scores an identical reproduction must match exactly
UNTIMED = "seconds"  # the one history column that differs between identical runs: wall time


@dataclass(frozen=True)
class Record:
    """A finished run as its records hold it."""

    folder: Path
    config: TrainConfig
    history: list[dict]
    metrics: dict
    provenance: dict  # where it was trained (metrics.json's, else config.json's)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def val_accuracy(self) -> float:
        return float(self.metrics["val_accuracy"])


def read_record(folder: str | Path) -> Record | None:
    """The finished run in `folder` from its records, or None when a record is missing, unreadable or unfinished
    (a run still training, a damaged folder): those are not the store's claims."""
    folder = Path(folder)
    try:
        saved = run_files.read_json(folder / run_files.CONFIG)
        config = TrainConfig.from_dict({k: v for k, v in saved.items() if k != "provenance"})
        history = run_files.read_history(folder / run_files.HISTORY)
        metrics = run_files.read_json(folder / run_files.METRICS)
    except (CifarError, OSError, ValueError, TypeError):  # TypeError: config fields of another shape
        return None
    value = metrics.get("val_accuracy")
    if len(history) != config.epochs or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return Record(folder, config, history, metrics, metrics.get("provenance") or saved.get("provenance") or {})


def read_records(store: str | Path) -> list[Record]:
    """Every finished run record in `store`, by folder name."""
    store = Path(store)
    if not store.is_dir():
        raise CifarError(f"{store} is not a folder of run records; point --store at one (outputs/experiments/runs)")
    found = (read_record(folder) for folder in sorted(store.iterdir()) if folder.is_dir())
    return [r for r in found if r is not None]


# ----------------------------------------------------------------------------- the seed-to-seed spread


@dataclass(frozen=True)
class Spread:
    """The pooled seed-to-seed SD of validation accuracy (a fraction) over configurations with 2+ seeds."""

    sd: float
    configurations: int
    runs: int

    def describe(self) -> str:
        return (
            f"seed-to-seed SD {100 * self.sd:.3f} points, pooled over {self.configurations} configuration"
            f"{'s' if self.configurations != 1 else ''} "
            f"trained on several seeds ({self.runs} runs)"
        )


def _without_seed(config: TrainConfig) -> str:
    return json.dumps({k: v for k, v in config.to_dict().items() if k != "seed"}, sort_keys=True, default=str)


def seed_spread(records: list[Record]) -> Spread | None:
    """Runs that differ only by seed, grouped; their within-group variances pooled by degrees of freedom.
    None when no configuration has two seeds."""
    groups = defaultdict(list)
    for record in records:
        groups[_without_seed(record.config)].append(record.val_accuracy)
    several = [values for values in groups.values() if len(values) > 1]
    if not several:
        return None
    sd, _ = stats.pooled_sd(several)
    return Spread(sd, len(several), sum(map(len, several)))


# ----------------------------------------------------------------------------- where a number was made


@dataclass(frozen=True)
class Machine:
    """Where a run was trained: the device, the CPU (or GPU) and its instruction-set class, threads, precision."""

    device: str  # "cpu" or "cuda"
    name: str | None
    isa: str | None  # core.cpu.isa_class on a CPU
    precision: str | None
    threads: int | None = None

    @classmethod
    def of(cls, provenance: dict, config: TrainConfig) -> "Machine":
        """Where a run was trained, from its provenance; precision from there, else its config's (when resolved)."""
        device = str(provenance.get("device") or "cpu").split(":")[0]
        name = provenance.get("cpu") if device == "cpu" else provenance.get("device_name")
        precision = provenance.get("precision") or (config.precision if config.precision != "auto" else None)
        return cls(device, name, provenance.get("cpu_isa"), precision, provenance.get("threads"))

    @classmethod
    def here(cls, config: TrainConfig) -> "Machine":
        device = resolve_device(config.device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
        precision = with_precision(config, device).precision
        return cls(device.type, name, isa_class(), precision, torch.get_num_threads())

    def same_kind(self, other: "Machine") -> bool:
        """Whether identical numbers are expected: same device, same CPU ISA class (or GPU), same precision."""
        if self.device != other.device or self.precision is None or self.precision != other.precision:
            return False
        if self.device == "cpu":
            return self.isa is not None and self.isa == other.isa
        return self.name is not None and self.name == other.name

    def describe(self) -> str:
        parts = [self.name or "an unknown " + ("CPU" if self.device == "cpu" else "GPU")]
        if self.device == "cpu":
            parts.append(f"ISA class {self.isa or 'unknown'}")
        if self.threads:
            parts.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        parts.append(self.precision or "precision unknown")
        return ", ".join(parts)


# ----------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Check:
    """One record trained again: both numbers, where each was made, and the verdict."""

    run: str
    seed: int
    recorded: float
    reproduced: float  # NaN when the reproduction diverged
    recorded_on: Machine
    reproduced_on: Machine
    verdict: str
    agrees: bool

    def line(self) -> str:
        reproduced = f"{100 * self.reproduced:.2f}%" if math.isfinite(self.reproduced) else "diverged"
        return (
            f"run {self.run} (seed {self.seed}): recorded {100 * self.recorded:.2f}% validation accuracy on "
            f"{self.recorded_on.describe()}; reproduced {reproduced} here on {self.reproduced_on.describe()}: "
            f"{self.verdict}"
        )


def _history_difference(recorded: list[dict], reproduced: list[dict]) -> str | None:
    """Where two histories part (timings aside), or None when they are the same number for number."""
    for row, again in zip(recorded, reproduced):
        differs = sorted(k for k in set(row) | set(again) if k != UNTIMED and row.get(k) != again.get(k))
        if differs:
            return f"epoch {row.get('epoch')}'s {', '.join(differs)}"
    return None if len(recorded) == len(reproduced) else "the number of epochs"


def judge(
    record: Record,
    metrics: dict,
    history: list[dict],
    recorded_on: Machine,
    reproduced_on: Machine,
    spread: Spread | None,
) -> tuple[str, bool]:
    """The verdict on a reproduction (its `metrics` and `history`) of `record`, and whether it agrees."""
    reproduced = metrics.get("val_accuracy")
    if reproduced is None or not math.isfinite(reproduced):
        return "differs: the reproduction diverged where the recorded run did not", False
    if recorded_on.same_kind(reproduced_on):
        parted = [k for k in COMPARED if record.metrics.get(k) != metrics.get(k)]
        where = ", ".join(parted) or _history_difference(record.history, history)
        if where is None:
            return "identical", True
        return f"differs: expected identical on the same ISA class and precision (not the same {where})", False
    difference = 100 * abs(reproduced - record.val_accuracy)
    if spread is None:
        return (
            "cannot judge: made on another kind of machine, and no configuration in the store was trained on "
            "several seeds to measure the seed-to-seed spread by",
            False,
        )
    bound = SPREAD_FACTOR * 100 * spread.sd
    if difference <= bound:
        return (
            f"within the seed-to-seed spread (|difference| {difference:.2f} <= {SPREAD_FACTOR} x "
            f"{100 * spread.sd:.2f} points; another kind of machine, so not bit for bit)",
            True,
        )
    return (
        f"outside the seed-to-seed spread (|difference| {difference:.2f} > {SPREAD_FACTOR} x {100 * spread.sd:.2f} points)",
        False,
    )


# ----------------------------------------------------------------------------- training them again


def sample(records: list[Record], n: int, seed: int) -> list[Record]:
    """`n` of the records, drawn at random by `seed` (the same seed, the same draw)."""
    if n < 1:
        raise ConfigError(f"the sample must hold at least 1 record, got {n}")
    if n > len(records):
        raise CifarError(
            f"the store holds {len(records)} finished run record{'s' if len(records) != 1 else ''}; "
            f"ask for at most that many (--sample {len(records)})"
        )
    return random.Random(seed).sample(records, n)


def reproduce(record: Record, dataset, spread: Spread | None, work_dir: str | Path) -> Check:
    """Train `record`'s configuration again into `work_dir` (never its own folder) and judge the result."""
    config = record.config
    recorded_on = Machine.of(record.provenance, config)
    reproduced_on = Machine.here(config)
    run_dir = Path(work_dir) / record.name
    if run_dir.resolve() == record.folder.resolve():  # the committed records are only read
        raise CifarError(f"the reproduction of {record.folder} would overwrite it; verify into another folder")
    try:
        result = fit(config, dataset=dataset, run_dir=run_dir, evaluate_test=False, progress=False, log=lambda *_: None)
    except NonFiniteLoss:
        metrics, history = {"val_accuracy": math.nan}, []
    else:  # read back as written, like the record: the same rounding on both sides of the comparison
        metrics = run_files.read_json(run_dir / run_files.METRICS)
        history = run_files.read_history(run_dir / run_files.HISTORY)
        reproduced_on = Machine.of(metrics.get("provenance") or {}, result.config)
    verdict, agrees = judge(record, metrics, history, recorded_on, reproduced_on, spread)
    reproduced = metrics.get("val_accuracy")
    return Check(
        record.name,
        config.seed,
        record.val_accuracy,
        math.nan if reproduced is None else float(reproduced),
        recorded_on,
        reproduced_on,
        verdict,
        agrees,
    )


def verify(
    store: str | Path,
    n: int,
    seed: int,
    dataset=None,
    data_root=None,
    verify_data: bool = True,
    log=print,
) -> list[Check]:
    """Train `n` records of `store`, drawn by `seed`, again here and judge each; one line per run through `log`."""
    records = read_records(store)
    if not records:
        raise CifarError(f"{store} holds no finished run record (config.json, history.csv and metrics.json) to verify")
    chosen = sample(records, n, seed)
    spread = seed_spread(records)
    log(
        f"verifying {n} of the {len(records)} run records in {store} (drawn with --seed {seed}); "
        + (spread.describe() if spread else "no configuration there has several seeds, so no seed-to-seed spread")
    )
    dataset = dataset if dataset is not None else D.load_cifar10(data_root, download=False, verify=verify_data)
    checks = []
    with tempfile.TemporaryDirectory(prefix="cifar-verify-") as work_dir:
        for record in chosen:
            checks.append(reproduce(record, dataset, spread, work_dir))
            log(checks[-1].line())
    return checks
