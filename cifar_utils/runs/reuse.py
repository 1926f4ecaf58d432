"""Trained again or reused, and at which precision: the one decision for every kind of run, and the labels
of runs reused from a machine where precision "auto" meant another precision.

Three kinds of run ask it, each through its own `decide_*`, and follow the `Decision` it returns
(training.carry_out: load the run, or train it):

- a named run, `<runs>/<name>/` (notebook 02, training.fit_or_reuse): `decide_named_run`;
- a reference run, `outputs/runs/<reference name>/` (reference.ensure_reference_runs): `decide_reference_run`;
- an experiment's run record, `<store>/<digest of its configuration>/` (experiments.train_runs):
  `decide_experiment_run`.

The report asks `holds_reusable_run` before notebook 02 runs, to hand it the finished run.

The rules, the same for all three:

- Asked to train again (reuse=False: --retrain, REUSE=False, RERUN=True): trained again, at this
  machine's precision.
- A finished run of exactly this configuration is reused: loaded from its weights or, for an
  experiment, from its records alone (config.json, history.csv, metrics.json, as a clone holds them).
- Precision "auto" also reuses a finished run of the same configuration made at another precision:
  that is what "auto" meant on the machine that trained it (bf16 where the committed runs were made,
  fp32 on an AVX2-only CPU), and training it again would take hours on a CPU. Every place that shows
  it says so (`made_elsewhere`'s label, `precision_census`). An explicitly asked precision must match.
- Committed run folders are read-only fallbacks: a named run's `reuse_from`, the committed store of
  experiment records (`_experiment_stores`). They are read, never trained into.
- A folder holding a run of another configuration: a named run's is never replaced unless `overwrite`
  (a ConfigError says what differs); a reference run's is the previous definition's, replaced by design;
  an experiment record's folder is named by its configuration's digest, so other records there are
  damaged, and replaced.
- A finished run whose records cannot be read counts as none, and is trained again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import paths
from ..core.config import TrainConfig
from ..core.evaluation import PRECISION_DTYPES, precision_name, resolve_device, with_precision
from ..errors import CifarError, ConfigError
from . import run_files
from .run_files import CHECKPOINT, CONFIG, HISTORY, METRICS, RunRecord, dtype_name, read_json


@dataclass(frozen=True)
class Decision:
    """What becomes of one run: the finished run in `folder` is reused, or `config` is trained into `folder`."""

    folder: Path
    config: TrainConfig  # what to train; when reused, the configuration asked, at the precision it was made in
    reuse: bool
    resume: bool = False  # train by continuing the checkpoint in `folder` rather than from the start
    record: RunRecord | None = None  # reused from its records alone (no weights): the run as they hold it


# ----------------------------------------------------------------------------- named and reference runs


def decide_named_run(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    reuse: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    reuse_from=(),
    log=print,
) -> Decision:
    """Reuse the finished run of `config` in `run_dir`, else in a `reuse_from` folder (read, never written);
    else train into `run_dir`, continuing its checkpoint with `resume`.

    A run in `run_dir` of another configuration (precision aside) is a ConfigError unless `overwrite`. A
    finished run in `run_dir` whose records cannot be read is named in `log` and trained again."""
    config, run_dir = config.validate(), Path(run_dir)
    if reuse:
        for folder in (run_dir, *map(Path, reuse_from)):
            difference = _finished_run_difference(config, folder, log=log if folder == run_dir else None)
            if difference is not None and _difference_allows_reuse(config, difference):
                return Decision(folder, config, reuse=True)
    changed = _started_configuration_difference(config, run_dir)
    if changed and not overwrite:
        raise ConfigError(
            f"{run_dir} holds a run of another configuration ({'; '.join(changed)}); it is kept. "
            f"Choose another run name, or set OVERWRITE=True (--overwrite) to replace it"
        )
    return Decision(run_dir, config, reuse=False, resume=resume and (run_dir / CHECKPOINT).is_file())


def decide_reference_run(config: TrainConfig, run_dir: str | Path, *, reuse: bool = True, log=print) -> Decision:
    """A named run whose folder's name means "the reference run as REFERENCE_RUNS defines it": when that
    definition changes, the run of the old one is replaced (the report, the only writer of outputs/, says so)."""
    return decide_named_run(config, run_dir, reuse=reuse, overwrite=True, log=log)


def holds_reusable_run(config: TrainConfig, run_dir: str | Path) -> bool:
    """True when `run_dir` holds a finished run (checkpoint and metrics) that `config` reuses: of exactly
    `config`, at the precision it resolves to here or, where `config` asks for "auto", at any precision."""
    difference = _finished_run_difference(config, run_dir)
    return difference is not None and _difference_allows_reuse(config, difference)


def _difference_allows_reuse(config: TrainConfig, difference: list[str]) -> bool:
    """None at all, or only the precision where `config` asks for "auto" (whatever "auto" meant where it ran)."""
    return difference == [] or (config.precision == "auto" and all(d.startswith("precision:") for d in difference))


def _finished_run_difference(config: TrainConfig, run_dir: str | Path, log=None) -> list[str] | None:
    """None: no finished run in `run_dir`; else how its configuration differs from `config` ([]: not at all).
    A finished run whose records cannot be read counts as none; with `log`, one line says which and why."""
    run_dir = Path(run_dir)
    if not ((run_dir / METRICS).is_file() and (run_dir / CHECKPOINT).is_file()):
        return None
    try:
        device = resolve_device(config.device)
        saved = run_files.recorded_precision(
            TrainConfig.from_dict(run_files.load_checkpoint(run_dir)["config"]), run_dir, device
        )
        recorded = len(run_files.read_history(run_dir / HISTORY))
        if recorded != saved.epochs:
            raise CifarError(f"its history holds {recorded} of {saved.epochs} epochs")
    except (CifarError, OSError) as exc:
        if log is not None:
            log(f"the finished run in {run_dir} cannot be read ({str(exc).splitlines()[0]}); training it again")
        return None
    return run_files.config_differences(saved.to_dict(), with_precision(config, device).to_dict())


def _started_configuration_difference(config: TrainConfig, run_dir: Path) -> list[str]:
    """How the configuration a run folder was started with (config.json) differs from `config`, precision
    aside; [] when the folder holds no readable one. What a named run never replaces unasked."""
    try:
        saved = read_json(run_dir / CONFIG)
        saved = {k: v for k, v in saved.items() if k != "provenance"}
    except (CifarError, OSError, ValueError):
        return []
    return [d for d in run_files.config_differences(saved, config.to_dict()) if not d.startswith("precision:")]


def reused_run(decision: Decision, log=print) -> RunRecord:
    """The run a reuse `decision` names: its records, or its weights loaded, at the precision it was made in.
    `log` gets one line: which run, made at which precision (and where, if not as "auto" means here)."""
    if decision.record is not None:
        return decision.record
    device = resolve_device(decision.config.device)
    loaded = run_files.load_run(decision.folder, device)
    loaded.config = run_files.recorded_precision(loaded.config, decision.folder, device)
    prov = (loaded.metrics or {}).get("provenance", {})
    made = made_elsewhere(loaded.config, prov, device)
    log(
        f"reusing the finished run in {decision.folder} (same configuration, {made or loaded.config.precision}, "
        f"trained at commit {prov.get('git_commit', 'unknown')}); set REUSE=False / delete the folder to train "
        f"it again" + (" at this machine's precision" if made else "")
    )
    loaded.reused = True
    return loaded


# ----------------------------------------------------------------------------- experiment records


def decide_experiment_run(store: str | Path, config: TrainConfig, *, rerun: bool = False) -> Decision:
    """The finished run of `config` to reuse, or the folder in `store` to train it into (with `rerun`, always).

    Looked for in `store`, then in the committed store (outputs/experiments/runs), which a notebook run by
    hand reads and never writes: first its folder at this machine's precision, then, where `config` asks for
    "auto", a finished run of the same configuration at another precision, reused as it is (its rows say so:
    `trained_precision`, `trained_on`). A run whose records alone are there (a clone: no weights) is reused
    from them. The folder to train into is named by the configuration's digest: records of another
    configuration there are damaged, and the new run replaces them."""
    if not rerun:
        for where in _experiment_stores(store):
            found = _finished_experiment_run(where, config)
            if found is not None:
                return found
    return Decision(run_files.digest_folder(store, config), config, reuse=False)


def _experiment_stores(store: str | Path) -> list[Path]:
    """`store`, then the committed store (read only) when it is another folder."""
    committed = paths.committed_outputs_dir() / run_files.EXPERIMENT_RUNS
    store = Path(store)
    return [store] if not committed.is_dir() or committed.resolve() == store.resolve() else [store, committed]


def _finished_experiment_run(store: Path, config: TrainConfig) -> Decision | None:
    candidates = [config]
    if config.precision == "auto":  # then also what "auto" means elsewhere: each other precision, in turn
        here = with_precision(config, resolve_device(config.device)).precision
        candidates += [dataclasses.replace(config, precision=p) for p in PRECISION_DTYPES if p != here]
    for made_as in candidates:
        folder = run_files.digest_folder(store, made_as)
        record = reusable_record(made_as, folder)
        if record is not None or holds_reusable_run(made_as, folder):
            return Decision(folder, made_as, reuse=True, record=record)
        # Weights there that cannot be read (or are of another run) must not cost the records: they still say what
        # ran, and training into this folder would replace a committed record nobody asked to replace.
        record = reusable_record(made_as, folder, ignore_weights=True)
        if record is not None:
            return Decision(folder, made_as, reuse=True, record=record)
    return None


def _as_json(values: dict) -> dict:
    return json.loads(json.dumps(values, default=str))


def reusable_record(config: TrainConfig, folder: str | Path, ignore_weights: bool = False) -> RunRecord | None:
    """The finished run of exactly `config` in `folder` from its records alone (config, history, metrics), as a
    clone holds them without weights; None when the folder holds weights (then `holds_reusable_run` decides;
    `ignore_weights`: read the records anyway), lacks a record, or holds another configuration or an unfinished run."""
    folder = Path(folder)
    weights = (folder / CHECKPOINT).is_file() and not ignore_weights
    if weights or not all((folder / f).is_file() for f in (CONFIG, HISTORY, METRICS)):
        return None
    try:
        saved = {k: v for k, v in read_json(folder / CONFIG).items() if k != "provenance"}
        history = run_files.read_history(folder / HISTORY)
        metrics = read_json(folder / METRICS)
    except (CifarError, OSError, ValueError):
        return None
    wanted = with_precision(config, resolve_device(config.device)).to_dict()
    if _as_json(saved) != _as_json(wanted) or len(history) != config.epochs or metrics.get("val_accuracy") is None:
        return None
    return RunRecord(
        model=None, config=TrainConfig.from_dict(saved), history=history, metrics=metrics, run_dir=folder, reused=True
    )


# ----------------------------------------------------------------------------- labels of runs made elsewhere


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
