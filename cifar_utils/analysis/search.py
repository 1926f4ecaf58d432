"""Hyperparameter search with Optuna over the fast engine's main knobs, scored on validation accuracy only.

A study is created once (`create_search`, or `python -m cifar_utils search create`: the base
configuration, the search space, the pruner and how many trials it wants, all stored in the study
itself), then any number of workers, on this machine or others that share the storage, run its
trials (`run_worker`, or `python -m cifar_utils worker --study NAME --storage URL`). What notebook 05
searches is decided in one place, `notebook_search`, which the notebook, `create_search`'s defaults
and the command line all use, so that they create the same study. Each trial trains the base configuration with the knobs TPE
suggests, for the study's fixed number of epochs, and reports its validation accuracy after every
epoch, so that successive halving can stop a trial that is behind its peers at the same epoch.

Every trial uses the base configuration's seed: the same initialisation and data order for every
configuration, so that trials differ by their knobs and not by seed luck. The test set plays no
part: the trials train with `evaluate_test=False`, so no test image is ever read, and the value a
trial reports is its final validation accuracy. The chosen configurations are evaluated on the
test set afterwards, once, on fresh seeds (notebook 05).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.trial import TrialState

from .. import paths
from ..core import data as D
from ..core.config import TrainConfig, recipe_config
from ..errors import CifarError, ConfigError, NonFiniteLoss
from ..runs.training import fit
from . import experiments as E
from . import search_storage

SETTINGS_ATTR = "cifar_search"  # the study's user attribute holding its base configuration, space and pruner
KNOBS = ("lr", "weight_decay", "batch_size", "label_smoothing")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WANTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)  # counted towards the target


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the searched knobs: lr and weight decay log-uniform, batch size from a list, smoothing uniform.

    The defaults bracket the fast recipe's values (lr 0.24, weight decay 8.3e-6, batch 2000,
    smoothing 0.2) by a factor of 4 and 10 either way, and a decade of batch sizes.
    """

    lr: tuple[float, float] = (0.06, 0.96)
    weight_decay: tuple[float, float] = (8.3e-7, 8.3e-5)
    batch_size: tuple[int, ...] = (250, 500, 1000, 2000)
    label_smoothing: tuple[float, float] = (0.0, 0.3)

    def validate(self) -> "SearchSpace":
        for name in ("lr", "weight_decay"):
            low, high = getattr(self, name)
            if not 0 < low < high:
                raise ConfigError(f"the search range of {name} must be 0 < low < high (log scale), got {(low, high)}")
        low, high = self.label_smoothing
        if not 0 <= low < high < 1:
            raise ConfigError(f"the search range of label_smoothing must be 0 <= low < high < 1, got {(low, high)}")
        if not self.batch_size or any(not isinstance(b, int) or b <= 0 for b in self.batch_size):
            raise ConfigError(f"the searched batch sizes must be positive whole numbers, got {self.batch_size}")
        return self

    def suggest(self, trial: optuna.Trial) -> dict:
        return {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            "batch_size": trial.suggest_categorical("batch_size", list(self.batch_size)),
            "label_smoothing": trial.suggest_float("label_smoothing", *self.label_smoothing),
        }

    @classmethod
    def from_dict(cls, values: dict) -> "SearchSpace":
        return cls(**{k: tuple(v) for k, v in values.items()}).validate()


@dataclass(frozen=True)
class Search:
    """What a study searches, as stored in it: every worker reads it from there, so all of them agree."""

    base: TrainConfig
    space: SearchSpace
    trials: int  # how many trials the study wants (finished, running or queued)
    min_resource: int = 1  # successive halving: the first rung, in epochs
    reduction_factor: int = 3  # a third of the trials go on at each rung

    def to_dict(self) -> dict:
        return json.loads(
            json.dumps(
                {
                    "base": self.base.to_dict(),
                    "space": asdict(self.space),
                    "trials": self.trials,
                    "min_resource": self.min_resource,
                    "reduction_factor": self.reduction_factor,
                }
            )
        )

    @classmethod
    def from_dict(cls, values: dict) -> "Search":
        return cls(
            TrainConfig.from_dict(values["base"]).validate(),
            SearchSpace.from_dict(values["space"]),
            int(values["trials"]),
            int(values["min_resource"]),
            int(values["reduction_factor"]),
        )

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.min_resource, reduction_factor=self.reduction_factor
        )


def notebook_search(budget: E.Budget | None = None, trials: int | None = None) -> Search:
    """The search notebook 05 runs at `budget` (None: the experiments' default budget) with `trials` trials (None: the
    notebook's default, experiments.SEARCH or SMOKE_SEARCH): the fast recipe at the budget with seed 0 for every trial,
    and the default space (smoke: batch sizes that give a 1,000-image subset several steps an epoch).

    The one place these are decided: the notebook, `create_search`'s defaults and `python -m cifar_utils search
    create` all call it, so the command line creates the very study the notebook would.
    """
    budget = budget if budget is not None else E.budget()
    space = SearchSpace(batch_size=(100, 200)) if budget.smoke else SearchSpace()
    return Search(E.base_config(budget, seed=0), space, E.search_settings(budget.smoke, trials)[0])


def notebook_storage(store: str | os.PathLike) -> str:
    """Notebook 05's default storage: the journal file beside the run records `store` (experiments.runs_store).

    Run by hand, the notebook writes to scratch/: its journal starts as a copy of the committed one, so the
    committed study is read (its trials are not run again) and never written."""
    path = Path(store).parent / E.JOURNAL
    committed = paths.committed_outputs_dir() / "experiments" / E.JOURNAL
    if not path.exists() and committed.is_file() and path.resolve() != committed.resolve():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(committed, path)
    return str(path)


def worker_command(name: str, storage) -> str:
    """The command that runs trials of the study `name` on another machine (a database password shown as ***)."""
    return (
        f"python -m cifar_utils worker --study {shlex.quote(name)} "
        f"--storage {shlex.quote(search_storage.describe(storage))}"
    )


def search_base_config(epochs: int = 8, val_size: int = 5000, **overrides) -> TrainConfig:
    """The fast recipe for a search: `epochs` fixed, `val_size` images held out to score the trials on."""
    return recipe_config("fast", epochs=epochs, val_size=val_size, **overrides)


def _check_search(search: Search) -> None:
    if search.base.val_size <= 0:
        raise ConfigError(
            "a search scores its trials on the validation split, but the base configuration has "
            "val_size 0; give it a validation split (search_base_config's val_size)"
        )
    if search.trials < 1 or search.min_resource < 1 or search.reduction_factor < 2:
        raise ConfigError(
            f"trials and min_resource must be at least 1 and reduction_factor at least 2, got "
            f"{search.trials}, {search.min_resource} and {search.reduction_factor}"
        )
    search.space.validate()


def _search(base: TrainConfig | None, space: SearchSpace | None, trials: int | None, **pruning) -> Search:
    """A search from what was given, the rest as notebook 05 has it (`notebook_search`)."""
    default = notebook_search()
    return Search(
        (base or default.base).validate(),
        space or default.space,
        default.trials if trials is None else trials,
        **pruning,
    )


def create_search(
    name: str,
    storage=None,
    base: TrainConfig | None = None,
    space: SearchSpace | None = None,
    trials: int | None = None,
    **pruning,
) -> optuna.Study:
    """Create the study `name` in `storage` (see search_storage.open_storage), or open it when it already holds this
    very search; a study of that name with other settings is refused. Returns the study. What is not given is
    notebook 05's default (`notebook_search`)."""
    search = _search(base, space, trials, **pruning)
    _check_search(search)
    opened = search_storage.open_storage(storage)
    try:  # opened, not created again: a journal logs every create, even one that finds the study there
        study = optuna.load_study(study_name=name, storage=opened)
    except KeyError:  # load_if_exists: another worker may create it between the two calls
        study = optuna.create_study(study_name=name, storage=opened, direction="maximize", load_if_exists=True)
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, search.to_dict())
    elif stored != search.to_dict():
        raise ConfigError(
            f"the study {name!r} in {search_storage.describe(storage)} already exists with other settings; "
            f"choose another study name, or delete it (optuna delete-study --study-name {name})"
        )
    return study


def load_search(name: str, storage=None, seed: int | None = None, **storage_options) -> tuple[optuna.Study, Search]:
    """Open the study `name` with its own sampler (TPE) and pruner; `seed` seeds this worker's sampler."""
    opened = search_storage.open_storage(storage, **storage_options)
    try:
        settings = optuna.load_study(study_name=name, storage=opened).user_attrs.get(SETTINGS_ATTR)
    except KeyError:
        raise CifarError(
            f"there is no study {name!r} in {search_storage.describe(storage)}; create it first "
            f"(python -m cifar_utils search create, or notebook 05)"
        ) from None
    if settings is None:
        raise CifarError(
            f"the study {name!r} in {search_storage.describe(storage)} was not made by create_search, so its "
            f"base configuration is unknown; create a new study with create_search"
        )
    search = Search.from_dict(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # constant_liar is marked experimental
        # constant_liar: running trials count as bad guesses, so parallel workers do not all try the same point
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.load_study(study_name=name, storage=opened, sampler=sampler, pruner=search.pruner()), search


def trial_config(search: Search, params: dict) -> TrainConfig:
    return TrainConfig.from_dict({**search.base.to_dict(), **params}).validate()


def objective(search: Search, dataset):
    """The function a trial runs: train with the suggested knobs, report validation accuracy per epoch, return
    the final validation accuracy. A diverging configuration ends as a FAILED trial (a result, not a crash)."""

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr(search_storage.OWNER_ATTR, search_storage.owner())
        config = trial_config(search, search.space.suggest(trial))

        def report(row: dict) -> None:
            trial.report(row["val_acc"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"validation accuracy {row['val_acc']:.4f} after epoch {row['epoch']} is "
                    f"behind the other trials at that epoch"
                )

        result = fit(config, dataset=dataset, evaluate_test=False, progress=False, log=lambda *_: None, on_epoch=report)
        m = result.metrics
        trial.set_user_attr(
            "metrics",
            {k: m[k] for k in ("val_accuracy", "val_loss", "train_seconds", "seconds", "train_images", "val_images")},
        )
        trial.set_user_attr("precision", result.config.precision)
        return float(m["val_accuracy"])

    return run


def _line(trial: optuna.trial.FrozenTrial) -> str:
    retry = search_storage.retried_from(trial)
    what = {
        TrialState.COMPLETE: f"validation accuracy {trial.value:.4f}",
        TrialState.PRUNED: f"pruned after epoch {trial.last_step}",
    }.get(trial.state, trial.state.name.lower())
    knobs = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.params.items())
    took = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else math.nan
    return (
        f"trial {trial.number}{f' (retry of {retry})' if retry is not None else ''}: {what} in {took:.1f} s "
        f"[pid {os.getpid()}; {knobs}]"
    )


def run_worker(
    name: str,
    storage=None,
    trials: int | None = None,
    dataset=None,
    data_root=None,
    verify_data: bool = True,
    seed: int | None = None,
    log=print,
    **storage_options,
) -> list[int]:
    """Run trials of the study `name` until it holds the trials it wants, or `trials` of them ran here.

    Before each trial the trials of dead workers are failed and queued again (search_storage.fail_stale_trials),
    so a retry is taken up by the next trial. Returns the numbers of the trials this worker finished.
    """
    if trials is not None and trials < 1:
        raise ConfigError(f"trials must be a positive whole number, got {trials}")
    study, search = load_search(name, storage, seed, **storage_options)
    dataset = dataset if dataset is not None else D.load_cifar10(data_root, verify=verify_data)
    run, done = objective(search, dataset), []
    retries = storage_options.get("retries", 1)

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done.append(trial.number)
        log(_line(trial))

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from `after`
    try:
        while trials is None or len(done) < trials:
            for number in search_storage.fail_stale_trials(study, retries):
                log(
                    f"trial {number}: its worker is gone; marked failed" + (" and queued again" if retries != 0 else "")
                )
            if len(study.get_trials(deepcopy=False, states=WANTED)) >= search.trials and not study.get_trials(
                deepcopy=False, states=(TrialState.WAITING,)
            ):
                break
            # NonFiniteLoss: that trial FAILS and the worker goes on; other errors stop the worker (the trial FAILS)
            started = len(study.get_trials(deepcopy=False))
            try:
                study.optimize(run, n_trials=1, catch=(NonFiniteLoss,), callbacks=[after], gc_after_trial=False)
            except (UpdateFinishedTrialError, ValueError):  # Optuna's refusals to update a finished trial
                judged = _failed_by_another(study, started)
                if judged is None:
                    raise
                log(
                    f"trial {judged} was marked failed by another worker while it ran here (no heartbeat within the "
                    f"grace period: is this machine overloaded? raise --grace); its result is dropped"
                )
    finally:
        optuna.logging.set_verbosity(verbosity)
    return done


def wait_for_workers(
    study: optuna.Study, timeout: float, poll: float = 10.0, retries: int | None = 1, log=print
) -> list[int]:
    """Wait, at most `timeout` seconds, until no trial of `study` is running or queued on another worker; then say
    in one line whether every trial finished or which ones are left behind. Returns the numbers of those left.

    A worker here stops once the study holds the trials it wants, running ones included, so trials of other
    workers may still run when it returns: their results would be missing from what is chosen next. Every poll
    also ends the trials of dead workers as a worker does (search_storage.fail_stale_trials, queued again up to
    `retries` times, for a live worker to take up), so a dead worker does not hold the wait until its timeout.
    """
    if not timeout >= 0 or not poll > 0:  # NaN fails both
        raise ConfigError(f"the wait for workers needs a timeout >= 0 and a poll > 0 seconds, got {timeout} and {poll}")
    deadline = time.monotonic() + timeout
    while True:
        for number in search_storage.fail_stale_trials(study, retries):
            log(f"trial {number}: its worker is gone; marked failed" + (" and queued again" if retries != 0 else ""))
        running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        queued = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        left = deadline - time.monotonic()
        if (running or queued) and left > 0:
            time.sleep(min(poll, left))
            continue
        break
    trials = study.get_trials(deepcopy=False)
    if not running and not queued:
        failed = sum(t.state == TrialState.FAIL for t in trials)
        log(
            f"all {len(trials)} trials of study {study.study_name!r} have finished ({len(trials) - failed} complete "
            f"or pruned, {failed} failed); none is running on another worker"
        )
        return []
    behind = [f"{len(running)} still running ({', '.join(map(str, running))})"] if running else []
    behind += [f"{len(queued)} queued ({', '.join(map(str, queued))})"] if queued else []
    log(
        f"proceeding without {' and '.join(behind)} of study {study.study_name!r} after waiting {timeout:g} s for "
        f"the other workers; their results are not in what follows (run this again later to include them)"
    )
    return running + queued


def _failed_by_another(study: optuna.Study, first: int) -> int | None:
    """The number of this worker's last trial (numbered `first` or later) if another worker has failed it, else None."""
    me = os.getpid()
    for trial in reversed(study.get_trials(deepcopy=False)[first:]):
        if (trial.user_attrs.get(search_storage.OWNER_ATTR) or {}).get("pid") == me:
            return trial.number if trial.state == TrialState.FAIL else None
    return None


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value (final validation accuracy), the knobs, the trial it retries,
    the last epoch reported and its validation accuracy, the worker, and seconds. Sorted by number."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        worker = t.user_attrs.get(search_storage.OWNER_ATTR) or {}
        took = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else math.nan
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value if t.value is not None else math.nan,
                **{k: t.params.get(k) for k in KNOBS},
                "retry_of": search_storage.retried_from(t),
                "last_epoch": t.last_step,
                "last_value": t.intermediate_values.get(t.last_step, math.nan) if t.last_step is not None else math.nan,
                "worker": f"{worker.get('host')}:{worker.get('pid')}" if worker else None,
                "seconds": took,
            }
        )
    columns = ["number", "state", "value", *KNOBS, "retry_of", "last_epoch", "last_value", "worker", "seconds"]
    return pd.DataFrame(rows, columns=columns).set_index("number")


def best_trials(study: optuna.Study, k: int = 3) -> list[optuna.trial.FrozenTrial]:
    """The k completed trials with the highest validation accuracy (ties: the earlier trial first)."""
    complete = sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number)
    )
    if not complete:
        raise CifarError("the study has no completed trial yet; run workers first")
    return complete[:k]


def best_configs(study: optuna.Study, search: Search, k: int = 3) -> list[TrainConfig]:
    """The k best trials' configurations, to re-train on fresh seeds."""
    return [trial_config(search, t.params) for t in best_trials(study, k)]


def default_name(base: TrainConfig, space: SearchSpace | None = None, trials: int | None = None, **pruning) -> str:
    """A study name unique to the search's settings, so that a changed search starts a study of its own."""
    search = _search(base, space, trials, **pruning)
    return (
        f"{base.model}-search-{hashlib.sha256(json.dumps(search.to_dict(), sort_keys=True).encode()).hexdigest()[:10]}"
    )


def run_search(
    name: str,
    storage=None,
    base: TrainConfig | None = None,
    space: SearchSpace | None = None,
    trials: int | None = None,
    dataset=None,
    seed: int | None = 0,
    log=print,
    **pruning,
) -> pd.DataFrame:
    """Notebook 05's one call: create (or reopen) the study, run its missing trials here, return `trials_table`.

    With `seed` and one worker (this process) the search is repeatable; more workers may join meanwhile.
    """
    start = time.perf_counter()
    study = create_search(name, storage, base, space, trials, **pruning)
    run_worker(name, storage, dataset=dataset, seed=seed, log=log)
    log(
        f"study {name!r}: {len(study.get_trials(deepcopy=False, states=FINISHED))} trials finished; "
        f"{time.perf_counter() - start:.0f} s here"
    )
    return trials_table(study)


def describe_space(space: SearchSpace) -> str:
    return (
        f"lr {space.lr[0]:g} to {space.lr[1]:g} and weight decay {space.weight_decay[0]:g} to "
        f"{space.weight_decay[1]:g} (log scale), batch size {', '.join(map(str, space.batch_size))}, label smoothing "
        f"{space.label_smoothing[0]:g} to {space.label_smoothing[1]:g}"
    )


def knob_values(config: TrainConfig) -> dict:
    """The searched knobs of a configuration as a table shows them (named in words, three significant figures)."""
    return {
        k.replace("_", " "): float(f"{getattr(config, k):.3g}")
        if isinstance(getattr(config, k), float)
        else getattr(config, k)
        for k in KNOBS
    }


def describe_knobs(config: TrainConfig) -> str:
    return (
        f"lr {config.lr:.3g}, weight decay {config.weight_decay:.3g}, batch size {config.batch_size}, "
        f"label smoothing {config.label_smoothing:.3g}"
    )


def format_trials(table: pd.DataFrame) -> pd.DataFrame:
    """`trials_table` as it is read, best first: accuracies in percent, knobs to three significant figures (a weight
    decay of 1.73e-05 stays readable), whole seconds, and a dash where a trial has no value (pruned, failed, not a
    retry), never NaN or None."""
    table = table.sort_values("value", ascending=False, na_position="last")

    def text(value, spec: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    shown = pd.DataFrame(index=table.index)
    shown["state"] = table["state"].str.lower()
    shown["val accuracy %"] = [
        text(100 * float(v), ".2f") if state == "COMPLETE" else "-" for v, state in zip(table["value"], table["state"])
    ]
    shown["last epoch"] = table["last_epoch"].map(lambda v: text(v, "d") if isinstance(v, int) else text(v, ".0f"))
    shown["last val accuracy %"] = table["last_value"].map(lambda v: text(None if v is None else 100 * float(v), ".2f"))
    for knob in KNOBS:
        whole = knob == "batch_size"  # a column with a missing value holds floats: 2000.0 must not read 2e+03
        shown[knob.replace("_", " ")] = table[knob].map(
            lambda v, whole=whole: text(
                None if v is None else (int(v) if whole and v == v else v), "d" if whole else ".3g"
            )
        )
    shown["retry of"] = table["retry_of"].map(lambda v: text(v, "") if v is not None else "-")
    shown["seconds"] = table["seconds"].astype(float).map(lambda v: text(v, ".0f"))
    return shown
