"""The training loop: `fit` trains one run as its `TrainConfig` says; `fit_or_reuse` skips a finished one,
and `carry_out` does what reuse.py decided for any kind of run (load it, or train it).

`fit` writes the run folder as it goes: `config.json` first, then `history.csv` and the
checkpoint `model.pt` after every epoch, and at the end `metrics.json` and `curves.png`. Every
file is replaced atomically, and the checkpoint holds the optimizer, weight-average and
random-number states, so a run resumes from its last epoch to the result an uninterrupted run
would have reached. A Ctrl-C raises `TrainingInterrupted`; what to tell the user is the caller's.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import allocator
from ..core import data as D
from ..core.augment import AUGMENTATIONS
from ..core.config import TrainConfig
from ..core.evaluation import PRECISION_DTYPES, autocast, evaluate, resolve_device, with_precision
from ..core.models import Classifier, build_model
from ..core.optim import WeightAverager, lr_factor, make_optimizer, set_learning_rates
from ..core.plots import plot_curves
from ..errors import CifarError, ConfigError, NonFiniteLoss, TrainingInterrupted
from ..paths import PAUSE_ENV
from . import distributed, run_files
from .atomic import interrupts_deferred, remove_temporaries, save_figure
from .provenance import provenance
from .reuse import Decision, decide_named_run, reused_run


@dataclass
class TrainState:
    """What a checkpoint holds besides the config: enough to continue the run exactly."""

    model: Classifier
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # shuffling and augmentation
    history: list = field(default_factory=list)
    averager: WeightAverager | None = None  # EMA / lookahead weights, when the config asks for them
    parallel: nn.Module | None = None  # the DistributedDataParallel wrapper of `model` that trains it under torchrun

    @property
    def epoch(self) -> int:
        return len(self.history)


def init_state(config: TrainConfig, split: D.Split, device: torch.device) -> TrainState:
    torch.manual_seed(config.seed)
    mean, std = D.channel_stats(split.train_images)
    model = build_model(
        config.model, mean=mean.float(), std=std.float(), channels_last=config.channels_last, **config.model_kwargs
    ).to(device)
    model.initialize_from_data(split.train_images)
    optimizer = make_optimizer(config, model)
    generator = torch.Generator().manual_seed(config.seed)
    averager = None
    if config.averaging != "none":
        averager = WeightAverager(model, config.averaging, config.averaging_decay, config.averaging_every)
    return TrainState(model, optimizer, generator, averager=averager)


def _no_phase(name: str):
    return contextlib.nullcontext()


def train_step(
    config: TrainConfig,
    state: TrainState,
    criterion: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    precision: torch.dtype | None,
    step: int,
    total_steps: int,
    phase=_no_phase,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step (0-based `step` of `total_steps`) on the batch; returns (loss, logits), not synced.

    `phase(name)` wraps "forward", "backward" and "optimizer" (a profiler's record_function, say).
    """
    model, optimizer = state.model, state.optimizer
    set_learning_rates(config, optimizer, step, total_steps)
    with phase("forward"), autocast(device, precision):
        logits = (state.parallel or model)(x)
        loss = criterion(logits.float(), y)
    with phase("backward"):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    with phase("optimizer"):
        optimizer.step()
        if state.averager is not None:
            state.averager.step(model, step + 1, total_steps)
    return loss, logits


def train_one_epoch(
    config: TrainConfig,
    state: TrainState,
    split: D.Split,
    device: torch.device,
    precision: torch.dtype | None,
    progress: bool = True,
) -> dict:
    epoch = state.epoch + 1
    n_train = len(split.train_images)
    drop_last = n_train >= 2 * config.batch_size  # a tiny smoke subset still gets a step
    steps_per_epoch = D.num_batches(n_train, config.batch_size, drop_last)
    total_steps = steps_per_epoch * config.epochs
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    state.model.train()
    losses, correct, seen = [], torch.zeros((), device=device), 0
    start = time.perf_counter()
    images, batch_augment = AUGMENTATIONS[config.augment].for_epoch(split.train_images, config.seed, epoch)
    batches = D.iterate_batches(
        images,
        split.train_labels,
        config.batch_size,
        shuffle=True,
        drop_last=drop_last,
        augment=batch_augment,
        generator=state.generator,
        device=device,
    )
    batches = distributed.shard_epoch(batches, n_train, config.batch_size, drop_last, config.seed, epoch)  # torchrun
    bar = tqdm(
        batches,
        total=steps_per_epoch,
        desc=f"epoch {epoch}/{config.epochs}",
        disable=not progress,
        leave=False,
        unit="batch",
    )
    pause_at = _pause_point()
    step = (epoch - 1) * steps_per_epoch
    for i, (x, y) in enumerate(bar):
        step = (epoch - 1) * steps_per_epoch + i
        loss, logits = train_step(config, state, criterion, x, y, device, precision, step, total_steps)
        if pause_at == (epoch, i + 1):
            _wait_for_a_signal(epoch, i + 1)
        losses.append(loss.detach())
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if i % 20 == 0 or i == steps_per_epoch - 1:  # a host sync: not every step
            _check_finite(losses, epoch, steps_per_epoch, config)
            if progress:
                bar.set_postfix(loss=f"{losses[-1].item():.3f}", acc=f"{correct.item() / seen:.3f}")
    bar.close()
    _check_finite(losses, epoch, steps_per_epoch, config)
    train_loss = torch.stack(losses).mean().item() if losses else float("nan")
    train_loss, correct, seen = distributed.epoch_totals(train_loss, correct, seen)  # the whole batches'
    lr = config.lr * lr_factor(config, step, total_steps) if losses else config.lr
    return {
        "train_loss": train_loss,
        "train_acc": correct.item() / max(1, seen),
        "lr": lr,
        "train_seconds": time.perf_counter() - start,
        "steps": steps_per_epoch,
    }


def _pause_point() -> tuple[int, int] | None:
    value = os.environ.get(PAUSE_ENV)
    if not value:
        return None
    epoch, step = value.split(":")[:2]
    return int(epoch), int(step)


def _wait_for_a_signal(epoch: int, step: int, limit_seconds: float = 600.0) -> None:
    """Stand still after optimizer step `step` of `epoch` until a signal ends or interrupts the process.

    The crash tests use it to deliver SIGKILL or Ctrl-C at a known point of an epoch, instead of
    guessing one with a sleep. FILE, when given, is created once the run is waiting there; deleting it lets the run go on.
    """
    marker = os.environ[PAUSE_ENV].split(":", 2)[2:]
    if marker:
        Path(marker[0]).touch()
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if marker and not Path(marker[0]).exists():
            return
        time.sleep(0.05)  # a Ctrl-C arrives here as KeyboardInterrupt
    raise CifarError(
        f"{PAUSE_ENV} held the run at epoch {epoch}, step {step} for {limit_seconds:.0f} s without "
        f"a signal; unset {PAUSE_ENV} (it is meant for tests)"
    )


def _check_finite(losses: list, epoch: int, steps_per_epoch: int, config: TrainConfig) -> None:
    if not losses:
        return
    finite = distributed.all_ranks(torch.isfinite(torch.stack(losses)))  # every rank stops at the same step
    if not bool(finite.all()):
        raise _non_finite("the training loss", epoch, int((~finite).nonzero()[0]) + 1, steps_per_epoch, config)


def _non_finite(what: str, epoch: int, step: int, steps_per_epoch: int, config: TrainConfig) -> NonFiniteLoss:
    return NonFiniteLoss(
        f"{what} became non-finite at epoch {epoch}, step {step} of {steps_per_epoch} "
        f"(lr {config.lr:g}); try a lower learning rate (--lr {config.lr / 10:g})"
    )


def run_epoch(
    config: TrainConfig,
    state: TrainState,
    split: D.Split,
    device: torch.device,
    precision: torch.dtype | None,
    progress: bool = True,
) -> dict:
    """Train one epoch, then validate; append the row to the state's history and return it."""
    start = time.perf_counter()
    row = train_one_epoch(config, state, split, device, precision, progress)
    if len(split.val_images):
        val = evaluate(
            state.model,
            split.val_images,
            split.val_labels,
            batch_size=config.eval_batch_size,
            device=device,
            precision=precision,
        )
        if not math.isfinite(val["loss"]):  # the epoch's last update broke the model; its own loss was finite
            raise _non_finite("the validation loss", state.epoch + 1, row["steps"], row["steps"], config)
    else:
        val = {"loss": float("nan"), "accuracy": float("nan")}
    entry = {
        "epoch": state.epoch + 1,
        "train_loss": row["train_loss"],
        "train_acc": row["train_acc"],
        "val_loss": val["loss"],
        "val_acc": val["accuracy"],
        "lr": row["lr"],
        "seconds": time.perf_counter() - start,
    }
    state.history.append(entry)
    return entry


# ----------------------------------------------------------------------------- checkpoints


def _rng_payload(state: TrainState, device: torch.device) -> dict:
    payload = {"torch": torch.get_rng_state(), "generator": state.generator.get_state()}
    if device.type == "cuda":
        payload["cuda"] = torch.cuda.get_rng_state(device)
    return payload


def _save_checkpoint(run_dir, config: TrainConfig, state: TrainState, device: torch.device) -> None:
    payload = {
        "config": config.to_dict(),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "history": state.history,
        "rng": _rng_payload(state, device),
    }
    if state.averager is not None:
        payload["averager"] = state.averager.state_dict()
    run_files.save_checkpoint(Path(run_dir) / run_files.CHECKPOINT, payload)


def _restore(state: TrainState, payload: dict, device: torch.device) -> None:
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.history = list(payload["history"])
    if state.averager is not None:
        state.averager.load_state_dict(payload["averager"])
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    state.generator.set_state(rng["generator"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


def format_epoch(entry: dict, epochs: int) -> str:
    return (
        f"Epoch {entry['epoch']}/{epochs} - Train Loss: {entry['train_loss']:.4f}, "
        f"Train Accuracy: {100 * entry['train_acc']:.2f}%, Validation Loss: {entry['val_loss']:.4f}, "
        f"Validation Accuracy: {100 * entry['val_acc']:.2f}% ({entry['seconds']:.1f} s)"
    )


# ----------------------------------------------------------------------------- fit


@distributed.session()  # under torchrun: every rank trains its slice of each batch; rank 0 logs and writes
@run_files.holds_run_folder  # one writer per run folder (rank 0's); `wait=True` waits for another instead of refusing
def fit(
    config: TrainConfig | None = None,
    *,
    dataset: D.Cifar10 | None = None,
    data_root=None,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    wait: bool = False,
    evaluate_test: bool = True,
    progress: bool = True,
    verify_data: bool = True,
    log=print,
    on_epoch=None,
) -> run_files.RunRecord:
    """Train a model as `config` says; write the run folder as it goes when `run_dir` is given.

    With `resume=True`, `run_dir` must hold a checkpoint: training continues after its last
    completed epoch, with the saved model, optimizer and random-number states, so the result is
    the one an uninterrupted run would have reached. `config`, if given, must match the saved one.
    The precision "auto" is resolved once and recorded in the run's config. With `overwrite=True` an
    old run in `run_dir` stays whole until the new one's first checkpoint replaces it. `on_epoch(row)`,
    if given, sees each epoch's history row once it is saved; what it raises ends the run (a search's
    pruner stopping a trial), and it changes nothing in the training.
    """
    log, progress = distributed.main_only(log), progress and distributed.is_main()
    allocator.retain_freed_memory()
    checkpoint = None
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run folder to continue")
        checkpoint = run_files.resume_checkpoint(run_dir)
        if distributed.is_main():
            remove_temporaries(run_dir)  # what a killed run was writing when it died
        config = run_files.resumed_config(config, checkpoint, run_dir, log)
    config = (config or TrainConfig()).validate()
    if config.optimizer == "muon" and distributed.active():  # not yet shown to match one process
        raise ConfigError(
            "the muon optimizer is not yet verified on several processes; use --recipe fast10 under torchrun"
        )
    device = distributed.device_for_rank(resolve_device(config.device))
    config = with_precision(config, device)  # recorded resolved, so a resume or reuse elsewhere can tell
    precision = PRECISION_DTYPES[config.precision]
    writes = run_dir is not None and distributed.is_main()  # the ranks hold the same state; one writes it
    write_dir = run_dir  # until the first checkpoint, an overwrite writes into a staging folder beside run_dir
    if writes and not resume:
        write_dir = run_files.prepare_run_dir(run_dir, overwrite)
    dataset = dataset if dataset is not None else D.load_cifar10(data_root, verify=verify_data)
    split = D.split_dataset(dataset, config.val_size, config.train_subset)
    state = init_state(config, split, device)
    if checkpoint is not None:
        _restore(state, checkpoint, device)
        if state.epoch >= config.epochs:
            log(f"{run_dir} already finished its {config.epochs} epochs; nothing to resume")
        else:
            log(f"resuming {run_dir} after epoch {state.epoch} of {config.epochs}")
    state.parallel = distributed.parallel(state.model, device, state.averager.average if state.averager else ())
    prov = provenance(device)
    prov.update(seed=config.seed, precision=config.precision, data_root=str(dataset.root))
    if writes:
        run_files.write_json(Path(write_dir) / run_files.CONFIG, {**config.to_dict(), "provenance": prov})

    resumed_after = state.epoch if checkpoint is not None else None
    saved_epoch = resumed_after or 0
    try:
        while state.epoch < config.epochs:
            entry = run_epoch(config, state, split, device, precision, progress)
            log(format_epoch(entry, config.epochs))
            if run_dir is not None:
                with interrupts_deferred():  # a Ctrl-C waits until checkpoint and history agree
                    if writes:
                        _save_checkpoint(write_dir, config, state, device)
                        run_files.write_history(Path(write_dir) / run_files.HISTORY, state.history)
                        write_dir = run_files.take_place(write_dir, run_dir)
                    saved_epoch = state.epoch
            if on_epoch is not None:
                on_epoch(dict(entry))
    except (KeyboardInterrupt, RuntimeError) as stop:  # Ctrl-C (torchrun's SIGTERM too), or a rank that died
        if isinstance(stop, RuntimeError) and not distributed.peer_lost(stop, log):
            raise
        kept = saved_epoch if run_dir is not None else state.epoch  # epochs whose work is kept
        raise TrainingInterrupted(run_dir, kept + 1, config.epochs, saved_epoch) from None

    if state.averager is not None:  # the averaged weights are the result; idempotent on a finished resume
        state.averager.finalize(state.model)
        if writes:
            _save_checkpoint(run_dir, config, state, device)
    metrics = _final_metrics(config, state, split, dataset, device, precision, evaluate_test, prov)
    if writes:
        run_files.write_json(Path(run_dir) / run_files.METRICS, metrics)
        fig = plot_curves(
            state.history, title=f"{Path(run_dir).name}: {config.model}, {config.optimizer} lr {config.lr:g}"
        )
        save_figure(fig, Path(run_dir) / run_files.CURVES)
        plt.close(fig)
    return run_files.RunRecord(
        model=state.model,
        config=config,
        history=state.history,
        metrics=metrics,
        run_dir=Path(run_dir) if run_dir else None,
        resumed_after=resumed_after,
    )


def _final_metrics(config, state, split, dataset, device, precision, evaluate_test: bool, prov: dict) -> dict:
    """The final validation and (once, after training) test scores, wall time, throughput, provenance."""
    eval_kwargs = dict(
        batch_size=config.eval_batch_size,
        device=device,
        precision=precision,
        tta=config.tta,
        tta_share=config.tta_share,
    )
    start = time.perf_counter()
    val = evaluate(state.model, split.val_images, split.val_labels, **eval_kwargs) if len(split.val_images) else None
    test = evaluate(state.model, dataset.test_images, dataset.test_labels, **eval_kwargs) if evaluate_test else None
    eval_seconds = time.perf_counter() - start
    train_seconds = sum(h["seconds"] for h in state.history)
    return {
        "val_accuracy": val["accuracy"] if val else None,
        "val_loss": val["loss"] if val else None,
        "val_accuracy_no_tta": (val or {}).get("accuracy_no_tta"),  # what test-time augmentation adds, on validation
        "test_accuracy": test["accuracy"] if test else None,
        "test_loss": test["loss"] if test else None,
        "test_images": test["n"] if test else None,
        "tta": config.tta,
        "test_accuracy_no_tta": (test or {}).get("accuracy_no_tta"),
        "eval_seconds": eval_seconds,
        "epochs": config.epochs,
        "train_images": len(split.train_images),
        "val_images": len(split.val_images),
        "seconds": train_seconds + eval_seconds,
        "train_seconds": train_seconds,
        "images_per_second": len(split.train_images) * config.epochs / train_seconds if train_seconds else None,
        "provenance": prov,
    }


# ----------------------------------------------------------------------------- reuse


def carry_out(decision: Decision, *, say_reused: bool = True, log=print, **fit_kwargs) -> run_files.RunRecord:
    """Do what a `reuse.decide_*` decided: load the run it reuses, or `fit` into its folder (continuing the
    checkpoint there when it says resume; otherwise a run already there is replaced once the new one's
    first checkpoint is written). `say_reused=False` leaves the reuse line to the caller."""
    if decision.reuse:
        return reused_run(decision, log if say_reused else (lambda line: None))
    if decision.resume:
        return fit(decision.config, run_dir=decision.folder, resume=True, log=log, **fit_kwargs)
    return fit(decision.config, run_dir=decision.folder, overwrite=True, log=log, **fit_kwargs)


def fit_or_reuse(
    config: TrainConfig,
    *,
    run_dir: str | Path,
    reuse: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    reuse_from=(),
    say_reused: bool = True,
    log=print,
    **fit_kwargs,
) -> run_files.RunRecord:
    """`fit` into `run_dir`, unless it already holds this very run finished (then load it) or,
    with `resume`, an interrupted one (then continue it).

    Re-running a notebook or the report then costs no training when nothing changed. What is reused,
    at which precision, and what is refused is `reuse.decide_named_run`'s: under precision "auto" a
    run made at another precision is reused and its log line names that precision and CPU; `reuse=False`
    trains again at this machine's precision; an explicitly asked precision must match.

    `say_reused=False` leaves the reuse line to the caller (notebook 02 shows its own).
    `reuse_from`: other run folders (the committed ones, say) that are read, never written: a finished
    run of this configuration there is loaded instead of training into `run_dir`.

    A folder holding a run of another configuration is never replaced unless `overwrite`: a ConfigError
    says what differs and what to do. A run whose records cannot be read is named and trained again.
    """
    decision = decide_named_run(
        config, run_dir, reuse=reuse, resume=resume, overwrite=overwrite, reuse_from=reuse_from, log=log
    )
    return carry_out(decision, say_reused=say_reused, log=log, **fit_kwargs)
