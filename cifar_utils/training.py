"""fit / evaluate: the training loop, optimizers and schedules, checkpoints, the history.

A run is driven by one `TrainConfig`. `fit` writes the run folder as it goes: `config.json`
first, then `history.csv` and the checkpoint `model.pt` after every epoch, and at the end
`metrics.json` and `curves.png`. Every file is replaced atomically, and the checkpoint holds
the optimizer and random-number states, so a run can be resumed from its last epoch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import data as D
from .errors import CifarError, ConfigError
from .models import Classifier, available_models, build_model

AUGMENTATIONS = {
    "none": None,
    "flip": D.Augment(flip=True, pad=0),
    "translate": D.Augment(flip=False, pad=4),
    "flip+translate": D.Augment(flip=True, pad=4),
}
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything that decides a run's result. Defaults are the seed project's recipe."""

    model: str = "seed_cnn"
    model_kwargs: dict = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    label_smoothing: float = 0.0
    augment: str = "none"
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    seed: int = 0
    val_size: int = 5000
    train_subset: int | None = None  # use only this many training images (smoke runs)
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    eval_batch_size: int = 1000

    def validate(self) -> "TrainConfig":
        if self.model not in available_models():
            raise ConfigError(f"unknown model {self.model!r}; choose one of: {', '.join(available_models())}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr (learning rate) must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be zero or positive, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.train_subset is not None and self.train_subset <= 0:
            raise ConfigError(f"train_subset must be positive when given, got {self.train_subset!r}")
        if not 0 <= self.val_size < 50000:
            raise ConfigError(f"val_size must be between 0 and 49999, got {self.val_size!r}")
        choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS,
                   "device": DEVICES, "augment": tuple(AUGMENTATIONS)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**values)


# ----------------------------------------------------------------------------- device, precision


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512 BF16 / AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # Measured on an AVX2-only CPU: bf16 autocast ran 10x slower than fp32, so only use it
        # where the CPU has native bf16 instructions.
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- optimizer, schedule


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning-rate multiplier at `step`; a pure function of the step, so resuming needs no state."""
    warmup = int(config.warmup_epochs * total_steps / config.epochs)
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    if config.schedule == "onecycle":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000, device=None,
                   precision: torch.dtype | None = None, tta: bool = False) -> torch.Tensor:
    """Logits (N, 10) as float32 on the CPU. `tta` averages the image with its mirror."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model(x).float()
                if tta:
                    logits = 0.5 * (logits + model(x.flip(-1)).float())
            chunks.append(logits.cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 10)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
    """Mean cross-entropy loss and accuracy (a fraction) of `model` on a split."""
    logits = predict_logits(model, images, **kwargs)
    if len(labels) == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "n": 0}
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return {"loss": loss, "accuracy": accuracy, "n": len(labels)}


# ----------------------------------------------------------------------------- the loop


class NonFiniteLoss(CifarError):
    pass


@dataclass
class Split:
    """The training data of one run: which images train and which validate."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor


def make_split(config: TrainConfig, dataset: D.Cifar10) -> Split:
    train_idx, val_idx = D.stratified_split(dataset.train_labels, config.val_size, seed=0)
    if config.train_subset is not None:
        # A seeded, class-mixed subset: the first images of a fixed shuffle.
        gen = torch.Generator().manual_seed(1234)
        train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)[: config.train_subset]]
        val_idx = val_idx[torch.randperm(len(val_idx), generator=gen)[: max(1, config.train_subset // 5)]] if len(val_idx) else val_idx
    return Split(dataset.train_images[train_idx], dataset.train_labels[train_idx],
                 dataset.train_images[val_idx], dataset.train_labels[val_idx])


@dataclass
class TrainState:
    """What a checkpoint holds besides the config: enough to continue the run exactly."""

    model: Classifier
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # shuffling and augmentation
    history: list = field(default_factory=list)

    @property
    def epoch(self) -> int:
        return len(self.history)


def init_state(config: TrainConfig, split: Split, device: torch.device) -> TrainState:
    torch.manual_seed(config.seed)
    mean, std = D.channel_stats(split.train_images)
    model = build_model(config.model, mean=mean.float(), std=std.float(), channels_last=config.channels_last,
                        **config.model_kwargs).to(device)
    if hasattr(model.net, "initialize_from_data"):  # e.g. a whitening layer fitted to training patches
        model.net.initialize_from_data(model.mean, model.std, split.train_images)
    optimizer = make_optimizer(config, model)
    generator = torch.Generator().manual_seed(config.seed)
    return TrainState(model, optimizer, generator)


def train_one_epoch(config: TrainConfig, state: TrainState, split: Split, device: torch.device,
                    precision: torch.dtype | None, progress: bool = True) -> dict:
    model, optimizer = state.model, state.optimizer
    epoch = state.epoch + 1
    n_train = len(split.train_images)
    drop_last = n_train >= 2 * config.batch_size  # a tiny smoke subset still gets a step
    steps_per_epoch = D.num_batches(n_train, config.batch_size, drop_last)
    total_steps = steps_per_epoch * config.epochs
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    model.train()
    losses, correct, seen = [], torch.zeros((), device=device), 0
    start = time.perf_counter()
    batches = D.iterate_batches(split.train_images, split.train_labels, config.batch_size, shuffle=True,
                                drop_last=drop_last, augment=AUGMENTATIONS[config.augment],
                                generator=state.generator, device=device)
    bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", disable=not progress,
               leave=False, unit="batch")
    lr = config.lr
    for i, (x, y) in enumerate(bar):
        step = (epoch - 1) * steps_per_epoch + i
        lr = config.lr * lr_factor(config, step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with autocast(device, precision):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if i % 20 == 0 or i == steps_per_epoch - 1:
            _check_finite(losses, epoch, steps_per_epoch, config)
            if progress:
                bar.set_postfix(loss=f"{losses[-1].item():.3f}", acc=f"{correct.item() / seen:.3f}")
    bar.close()
    _check_finite(losses, epoch, steps_per_epoch, config)
    train_seconds = time.perf_counter() - start
    train_loss = torch.stack(losses).mean().item() if losses else float("nan")
    return {"train_loss": train_loss, "train_acc": correct.item() / max(1, seen), "lr": lr, "train_seconds": train_seconds}


def _check_finite(losses: list, epoch: int, steps_per_epoch: int, config: TrainConfig) -> None:
    if not losses:
        return
    finite = torch.isfinite(torch.stack(losses))
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0])
        raise NonFiniteLoss(
            f"the training loss became non-finite at epoch {epoch}, step {step + 1} of {steps_per_epoch} "
            f"(lr {config.lr:g}); try a lower learning rate (--lr {config.lr / 10:g})"
        )


HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def run_epoch(config: TrainConfig, state: TrainState, split: Split, device: torch.device,
              precision: torch.dtype | None, progress: bool = True) -> dict:
    """Train one epoch, then validate; append the row to the state's history and return it."""
    start = time.perf_counter()
    row = train_one_epoch(config, state, split, device, precision, progress)
    if len(split.val_images):
        val = evaluate(state.model, split.val_images, split.val_labels, batch_size=config.eval_batch_size,
                       device=device, precision=precision)
    else:
        val = {"loss": float("nan"), "accuracy": float("nan")}
    entry = {"epoch": state.epoch + 1, "train_loss": row["train_loss"], "train_acc": row["train_acc"],
             "val_loss": val["loss"], "val_acc": val["accuracy"], "lr": row["lr"],
             "seconds": time.perf_counter() - start}
    state.history.append(entry)
    return entry


# ----------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    model: Classifier
    config: TrainConfig
    history: list
    metrics: dict
    run_dir: Path | None


def _config_differences(saved: dict, wanted: dict) -> list[str]:
    keys = sorted(set(saved) | set(wanted))
    return [f"{k}: {saved.get(k)!r} in the run, {wanted.get(k)!r} now" for k in keys if saved.get(k) != wanted.get(k)]


def _rng_payload(state: TrainState, device: torch.device) -> dict:
    payload = {"torch": torch.get_rng_state(), "generator": state.generator.get_state()}
    if device.type == "cuda":
        payload["cuda"] = torch.cuda.get_rng_state(device)
    return payload


def _restore(state: TrainState, payload: dict, device: torch.device) -> None:
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.history = list(payload["history"])
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    state.generator.set_state(rng["generator"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


def format_epoch(entry: dict, epochs: int) -> str:
    return (f"Epoch {entry['epoch']}/{epochs} - Train Loss: {entry['train_loss']:.4f}, "
            f"Train Accuracy: {100 * entry['train_acc']:.2f}%, Validation Loss: {entry['val_loss']:.4f}, "
            f"Validation Accuracy: {100 * entry['val_acc']:.2f}% ({entry['seconds']:.1f} s)")


def fit(config: TrainConfig | None = None, *, dataset: D.Cifar10 | None = None, data_root=None,
        run_dir: str | Path | None = None, overwrite: bool = False, resume: bool = False,
        evaluate_test: bool = True, progress: bool = True, verify_data: bool = True, log=print) -> FitResult:
    """Train a model as `config` says; write the run folder as it goes when `run_dir` is given.

    With `resume=True`, `run_dir` must hold a checkpoint: training continues after its last
    completed epoch, with the saved model, optimizer and random-number states, so the result is
    the one an uninterrupted run would have reached. `config`, if given, must match the saved one.
    """
    from . import runs
    from .plots import plot_curves
    from .provenance import provenance
    from .atomic import save_figure

    checkpoint = None
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run folder to continue")
        checkpoint = runs.load_checkpoint(Path(run_dir) / runs.CHECKPOINT)
        saved = TrainConfig.from_dict(checkpoint["config"])
        if config is not None:
            diff = _config_differences(saved.to_dict(), config.to_dict())
            if diff:
                raise ConfigError(f"cannot resume {run_dir} with a different configuration: " + "; ".join(diff))
        config = saved
    config = (config or TrainConfig()).validate()
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    if run_dir is not None and not resume:
        run_dir = runs.prepare_run_dir(run_dir, overwrite)
    dataset = dataset if dataset is not None else D.load_cifar10(data_root, verify=verify_data)
    split = make_split(config, dataset)
    state = init_state(config, split, device)
    if checkpoint is not None:
        _restore(state, checkpoint, device)
        if state.epoch >= config.epochs:
            log(f"{run_dir} already finished its {config.epochs} epochs; nothing to resume")
        else:
            log(f"resuming {run_dir} after epoch {state.epoch} of {config.epochs}")
    prov = provenance(device)
    prov.update(seed=config.seed, precision=str(precision).replace("torch.", "") if precision else "float32",
                data_root=str(dataset.root))
    if run_dir is not None:
        runs.write_json(Path(run_dir) / runs.CONFIG, {**config.to_dict(), "provenance": prov})

    while state.epoch < config.epochs:
        try:
            entry = run_epoch(config, state, split, device, precision, progress)
        except KeyboardInterrupt:
            where = f"; its checkpoint after epoch {state.epoch} is in {run_dir}" if run_dir and state.epoch else ""
            how = f"; continue with: python -m cifar_utils train --resume {run_dir}" if run_dir and state.epoch else ""
            raise TrainingInterrupted(f"training interrupted during epoch {state.epoch + 1}{where}{how}") from None
        log(format_epoch(entry, config.epochs))
        if run_dir is not None:
            runs.save_checkpoint(Path(run_dir) / runs.CHECKPOINT, {
                "config": config.to_dict(), "model": state.model.state_dict(),
                "optimizer": state.optimizer.state_dict(), "history": state.history,
                "rng": _rng_payload(state, device)})
            runs.write_history(Path(run_dir) / runs.HISTORY, state.history)

    eval_kwargs = dict(batch_size=config.eval_batch_size, device=device, precision=precision)
    start = time.perf_counter()
    val = evaluate(state.model, split.val_images, split.val_labels, **eval_kwargs) if len(split.val_images) else None
    test = evaluate(state.model, dataset.test_images, dataset.test_labels, **eval_kwargs) if evaluate_test else None
    eval_seconds = time.perf_counter() - start
    train_seconds = sum(h["seconds"] for h in state.history)
    metrics = {
        "val_accuracy": val["accuracy"] if val else None, "val_loss": val["loss"] if val else None,
        "test_accuracy": test["accuracy"] if test else None, "test_loss": test["loss"] if test else None,
        "epochs": config.epochs, "train_images": len(split.train_images), "val_images": len(split.val_images),
        "seconds": train_seconds + eval_seconds, "train_seconds": train_seconds,
        "images_per_second": len(split.train_images) * config.epochs / train_seconds if train_seconds else None,
        "provenance": prov,
    }
    if run_dir is not None:
        runs.write_json(Path(run_dir) / runs.METRICS, metrics)
        fig = plot_curves(state.history, title=f"{Path(run_dir).name}: {config.model}, {config.optimizer} lr {config.lr:g}")
        save_figure(fig, Path(run_dir) / runs.CURVES)
        import matplotlib.pyplot as plt
        plt.close(fig)
    return FitResult(state.model, config, state.history, metrics, Path(run_dir) if run_dir else None)


class TrainingInterrupted(CifarError):
    pass
