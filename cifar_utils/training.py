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
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import data as D
from . import hardware
from .atomic import interrupts_deferred, remove_temporaries
from .errors import CifarError, ConfigError
from .fastnet import AVERAGING, TTA_MODES, AlternatingFlip, WeightAverager, tta_logits
from .models import Classifier, available_models, build_model

AUGMENTATIONS = {
    "none": None,
    "flip": D.Augment(flip=True, pad=0),
    "translate": D.Augment(flip=False, pad=4),
    "flip+translate": D.Augment(flip=True, pad=4),
    # Mirror alternate halves of the data in alternate epochs (seeded), translate by up to 2 px.
    "alt_flip+translate2": AlternatingFlip(pad=2),
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
    # Fast-recipe knobs; their defaults leave the seed recipe unchanged.
    warmup_fraction: float = 0.0  # warm-up as a share of all steps (instead of warmup_epochs)
    bn_bias_lr_scale: float = 1.0  # lr multiplier for 1-D parameters (BatchNorm/whitening biases)
    lr_per_1024: bool = False  # lr is per 1024 images: scales with batch_size/1024, as does the per-step decay
    averaging: str = "none"  # weight averaging: "none", "ema" or "lookahead"
    averaging_decay: float = 0.95 ** 5
    averaging_every: int = 5
    tta: str = "none"  # test-time augmentation of the final evaluation: "none", "mirror", "mirror+translate"

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
        if not 0 <= self.warmup_fraction < 1 or (self.warmup_fraction and self.warmup_epochs):
            raise ConfigError(f"warmup_fraction must be in [0, 1) and not combined with warmup_epochs, "
                              f"got {self.warmup_fraction!r} (warmup_epochs {self.warmup_epochs!r})")
        if not self.bn_bias_lr_scale > 0:
            raise ConfigError(f"bn_bias_lr_scale must be positive, got {self.bn_bias_lr_scale!r}")
        if not (0 <= self.averaging_decay < 1 and isinstance(self.averaging_every, int) and self.averaging_every > 0):
            raise ConfigError(f"averaging_decay must be in [0, 1) and averaging_every a positive whole number, "
                              f"got {self.averaging_decay!r} and {self.averaging_every!r}")
        choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS,
                   "device": DEVICES, "augment": tuple(AUGMENTATIONS), "averaging": AVERAGING, "tta": TTA_MODES}
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


PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_name(precision: str, device: torch.device) -> str:
    """The precision a run computes in, "fp32", "bf16" or "fp16", with "auto" decided for `device`.

    "auto": $CIFAR_PRECISION when set; on CUDA bf16 (fp16 where the GPU lacks it); on a CPU bf16
    only with native bf16 instructions. Measured on an AVX2-only CPU: emulated bf16 autocast ran
    10x slower than fp32.
    """
    if precision != "auto":
        return precision
    forced = hardware.forced_precision()
    if forced is not None:
        if forced not in PRECISION_DTYPES:
            raise ConfigError(f"${hardware.PRECISION_ENV} is {forced!r}; set it to one of {', '.join(PRECISION_DTYPES)}, "
                              f"or unset it to let the CPU decide")
        return forced
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if hardware.has_native_bf16() else "fp32"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    return PRECISION_DTYPES[precision_name(precision, device)]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- optimizer, schedule


def param_groups(config: TrainConfig, model: nn.Module) -> list[dict]:
    """One group, or with `bn_bias_lr_scale`/`lr_per_1024` two: weights and 1-D parameters (biases).

    A group's "lr_scale" multiplies the scheduled lr in the loop. Weight decay is divided by it,
    so that every group decays by the same lr * weight_decay per step: the biases learn faster
    without being pulled to zero faster.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.bn_bias_lr_scale == 1.0 and not config.lr_per_1024:
        return [{"params": params}]
    batch_scale = config.batch_size / 1024 if config.lr_per_1024 else 1.0
    weights = [p for p in params if p.ndim > 1]
    biases = [p for p in params if p.ndim <= 1]
    groups = [{"params": weights, "lr_scale": batch_scale, "weight_decay": config.weight_decay},
              {"params": biases, "lr_scale": batch_scale * config.bn_bias_lr_scale,
               "weight_decay": config.weight_decay / config.bn_bias_lr_scale}]
    return [g for g in groups if g["params"]]


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(config, model)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning-rate multiplier at `step`; a pure function of the step, so resuming needs no state."""
    warmup = int(config.warmup_epochs * total_steps / config.epochs + config.warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    if config.schedule == "onecycle":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- evaluation


def _tta_mode(tta: bool | str) -> str:
    """`--tta` as a flag means the mirror; a string names the mode."""
    if isinstance(tta, bool):
        return "mirror" if tta else "none"
    return tta


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000, device=None,
                   precision: torch.dtype | None = None, tta: bool | str = False,
                   with_plain: bool = False):
    """Logits (N, 10) as float32 on the CPU.

    `tta`: True or "mirror" averages the image with its mirror; "mirror+translate" also uses
    1-pixel translations (see fastnet.tta_logits). `with_plain` returns (tta logits, plain
    logits), the plain ones from the same forward pass.
    """
    mode = _tta_mode(tta)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks, plain_chunks = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device, non_blocking=True)
            with autocast(device, precision):
                plain = model(x).float()
                logits = tta_logits(model, x, mode, plain)
            chunks.append(logits.cpu())
            plain_chunks.append(plain.cpu())
    finally:
        model.train(was_training)
    cat = lambda c: torch.cat(c) if c else torch.empty(0, 10)  # noqa: E731
    return (cat(chunks), cat(plain_chunks)) if with_plain else cat(chunks)


def _scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    return nn.functional.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
    """Mean cross-entropy loss and accuracy (a fraction) of `model` on a split.

    With test-time augmentation (`tta`), also "loss_no_tta" and "accuracy_no_tta".
    """
    tta = _tta_mode(kwargs.get("tta", False)) != "none"
    logits, plain = predict_logits(model, images, with_plain=True, **kwargs)
    if len(labels) == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "n": 0}
    loss, accuracy = _scores(logits, labels)
    result = {"loss": loss, "accuracy": accuracy, "n": len(labels)}
    if tta:
        result["loss_no_tta"], result["accuracy_no_tta"] = _scores(plain, labels)
    return result


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
    if config.val_size >= len(dataset.train_labels):
        raise ConfigError(f"val_size {config.val_size} leaves no training images: {dataset.root} holds only "
                          f"{len(dataset.train_labels)}; choose a smaller --val-size")
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
    averager: WeightAverager | None = None  # EMA / lookahead weights, when the config asks for them

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
    averager = None
    if config.averaging != "none":
        averager = WeightAverager(model, config.averaging, config.averaging_decay, config.averaging_every)
    return TrainState(model, optimizer, generator, averager=averager)


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
    images, augment = split.train_images, AUGMENTATIONS[config.augment]
    if hasattr(augment, "epoch_view"):  # per-epoch augmentation decided by (seed, epoch), e.g. alternating flip
        images, augment = augment.epoch_view(images, config.seed, epoch)
    batches = D.iterate_batches(images, split.train_labels, config.batch_size, shuffle=True,
                                drop_last=drop_last, augment=augment, generator=state.generator, device=device)
    bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", disable=not progress,
               leave=False, unit="batch")
    lr = config.lr
    pause_at = _pause_point()
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
        if state.averager is not None:
            state.averager.step(model, step + 1, total_steps)
        if pause_at == (epoch, i + 1):
            _wait_for_a_signal(epoch, i + 1)
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
    return {"train_loss": train_loss, "train_acc": correct.item() / max(1, seen), "lr": lr, "train_seconds": train_seconds,
            "steps": steps_per_epoch}


PAUSE_ENV = "CIFAR_PAUSE_AT"  # "EPOCH:STEP[:FILE]": tests stop a run at a chosen step (see _wait_for_a_signal)


def _pause_point() -> tuple[int, int] | None:
    value = os.environ.get(PAUSE_ENV)
    if not value:
        return None
    epoch, step = value.split(":")[:2]
    return int(epoch), int(step)


def _wait_for_a_signal(epoch: int, step: int, limit_seconds: float = 600.0) -> None:
    """Stand still after optimizer step `step` of `epoch` until a signal ends or interrupts the process.

    The crash tests use it to deliver SIGKILL or Ctrl-C at a known point of an epoch, instead of
    guessing one with a sleep. FILE, when given, is created once the run is waiting there.
    """
    marker = os.environ[PAUSE_ENV].split(":", 2)[2:]
    if marker:
        Path(marker[0]).touch()
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)  # a Ctrl-C arrives here as KeyboardInterrupt
    raise CifarError(f"{PAUSE_ENV} held the run at epoch {epoch}, step {step} for {limit_seconds:.0f} s without "
                     f"a signal; unset {PAUSE_ENV} (it is meant for tests)")


def _check_finite(losses: list, epoch: int, steps_per_epoch: int, config: TrainConfig) -> None:
    if not losses:
        return
    finite = torch.isfinite(torch.stack(losses))
    if not bool(finite.all()):
        raise _non_finite("the training loss", epoch, int((~finite).nonzero()[0]) + 1, steps_per_epoch, config)


def _non_finite(what: str, epoch: int, step: int, steps_per_epoch: int, config: TrainConfig) -> NonFiniteLoss:
    return NonFiniteLoss(f"{what} became non-finite at epoch {epoch}, step {step} of {steps_per_epoch} "
                         f"(lr {config.lr:g}); try a lower learning rate (--lr {config.lr / 10:g})")


HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def run_epoch(config: TrainConfig, state: TrainState, split: Split, device: torch.device,
              precision: torch.dtype | None, progress: bool = True) -> dict:
    """Train one epoch, then validate; append the row to the state's history and return it."""
    start = time.perf_counter()
    row = train_one_epoch(config, state, split, device, precision, progress)
    if len(split.val_images):
        val = evaluate(state.model, split.val_images, split.val_labels, batch_size=config.eval_batch_size,
                       device=device, precision=precision)
        if not math.isfinite(val["loss"]):  # the epoch's last update broke the model; its own loss was finite
            raise _non_finite("the validation loss", state.epoch + 1, row["steps"], row["steps"], config)
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
    reused: bool = False  # loaded from a finished run of the same configuration, not trained


def _config_differences(saved: dict, wanted: dict) -> list[str]:
    keys = sorted(set(saved) | set(wanted))
    return [f"{k}: {saved.get(k)!r} in the run, {wanted.get(k)!r} now" for k in keys if saved.get(k) != wanted.get(k)]


def _rng_payload(state: TrainState, device: torch.device) -> dict:
    payload = {"torch": torch.get_rng_state(), "generator": state.generator.get_state()}
    if device.type == "cuda":
        payload["cuda"] = torch.cuda.get_rng_state(device)
    return payload


def _save_checkpoint(run_dir, config: TrainConfig, state: TrainState, device: torch.device) -> None:
    from . import runs

    payload = {"config": config.to_dict(), "model": state.model.state_dict(),
               "optimizer": state.optimizer.state_dict(), "history": state.history,
               "rng": _rng_payload(state, device)}
    if state.averager is not None:
        payload["averager"] = state.averager.state_dict()
    runs.save_checkpoint(Path(run_dir) / runs.CHECKPOINT, payload)


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
    return (f"Epoch {entry['epoch']}/{epochs} - Train Loss: {entry['train_loss']:.4f}, "
            f"Train Accuracy: {100 * entry['train_acc']:.2f}%, Validation Loss: {entry['val_loss']:.4f}, "
            f"Validation Accuracy: {100 * entry['val_acc']:.2f}% ({entry['seconds']:.1f} s)")


def with_precision(config: TrainConfig, device: torch.device) -> TrainConfig:
    """`config` with "auto" precision replaced by what it means on `device`."""
    return dataclasses.replace(config, precision=precision_name(config.precision, device))


_DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def recorded_precision(saved: TrainConfig, run_dir, device: torch.device) -> TrainConfig:
    """A saved config with its precision as the run used it.

    Runs saved before the precision was resolved in the config say "auto"; their config.json
    provenance names the dtype they ran in. Failing that, "auto" is decided here.
    """
    if saved.precision != "auto":
        return saved
    from . import runs

    try:
        dtype = (runs.read_json(Path(run_dir) / runs.CONFIG).get("provenance") or {}).get("precision")
    except CifarError:
        dtype = None
    name = _DTYPE_NAMES.get(dtype, dtype)
    return dataclasses.replace(saved, precision=name if name in PRECISION_DTYPES else precision_name("auto", device))


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
        checkpoint = runs.resume_checkpoint(run_dir)
        remove_temporaries(run_dir)  # what a killed run was writing when it died
        saved = TrainConfig.from_dict(checkpoint["config"])
        device = resolve_device((config or saved).device)
        saved = recorded_precision(saved, run_dir, device)
        if config is not None:
            diff = _config_differences(saved.to_dict(), with_precision(config.validate(), device).to_dict())
            if diff:
                raise ConfigError(f"cannot resume {run_dir} with a different configuration ({'; '.join(diff)}); "
                                  f"resume without changing them, or train a new run into another --out")
        config = saved
        here = precision_name("auto", device)
        if config.precision != here:  # the run keeps its precision; mixing two in one run is never silent
            slow = "; this CPU has no native bf16, so expect it to be slow" if (
                config.precision == "bf16" and device.type == "cpu" and not hardware.has_native_bf16()) else ""
            log(f"continuing {run_dir} in {config.precision}, the precision it began with "
                f"(auto would choose {here} on this machine){slow}")
    config = (config or TrainConfig()).validate()
    device = resolve_device(config.device)
    config = with_precision(config, device)  # recorded resolved, so a resume or reuse elsewhere can tell
    precision = PRECISION_DTYPES[config.precision]
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
    prov.update(seed=config.seed, precision=config.precision, data_root=str(dataset.root))
    if run_dir is not None:
        runs.write_json(Path(run_dir) / runs.CONFIG, {**config.to_dict(), "provenance": prov})

    saved_epoch = state.epoch if checkpoint is not None else 0
    try:
        while state.epoch < config.epochs:
            entry = run_epoch(config, state, split, device, precision, progress)
            log(format_epoch(entry, config.epochs))
            if run_dir is not None:
                with interrupts_deferred():  # a Ctrl-C waits until checkpoint and history agree
                    _save_checkpoint(run_dir, config, state, device)
                    runs.write_history(Path(run_dir) / runs.HISTORY, state.history)
                    saved_epoch = state.epoch
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted(config, state, run_dir, saved_epoch, data_root, verify_data)) from None

    if state.averager is not None:  # the averaged weights are the result; idempotent on a finished resume
        state.averager.finalize(state.model)
        if run_dir is not None:
            _save_checkpoint(run_dir, config, state, device)
    eval_kwargs = dict(batch_size=config.eval_batch_size, device=device, precision=precision, tta=config.tta)
    start = time.perf_counter()
    val = evaluate(state.model, split.val_images, split.val_labels, **eval_kwargs) if len(split.val_images) else None
    test = evaluate(state.model, dataset.test_images, dataset.test_labels, **eval_kwargs) if evaluate_test else None
    eval_seconds = time.perf_counter() - start
    train_seconds = sum(h["seconds"] for h in state.history)
    metrics = {
        "val_accuracy": val["accuracy"] if val else None, "val_loss": val["loss"] if val else None,
        "test_accuracy": test["accuracy"] if test else None, "test_loss": test["loss"] if test else None,
        "test_images": test["n"] if test else None,
        "tta": config.tta, "test_accuracy_no_tta": (test or {}).get("accuracy_no_tta"),
        "eval_seconds": eval_seconds,
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


def _interrupted(config: TrainConfig, state: TrainState, run_dir, saved_epoch: int, data_root, verify_data: bool) -> str:
    """What a Ctrl-C left behind, and the command that continues from it."""
    done = saved_epoch if run_dir is not None else state.epoch  # epochs whose work is kept
    where = f"in epoch {done + 1} of {config.epochs}" if done < config.epochs else "after its last epoch"
    if run_dir is None:
        return f"training interrupted {where}; nothing was saved (no run folder was given)"
    if not saved_epoch:
        return (f"training interrupted {where}, before its first checkpoint, so there is nothing to resume: "
                f"train it again with --out {shlex.quote(str(run_dir))} --overwrite")
    command = f"python -m cifar_utils train --resume {shlex.quote(str(run_dir))}"
    command += f" --data-root {shlex.quote(str(data_root))}" if data_root is not None else ""
    command += "" if verify_data else " --no-verify"
    return f"training interrupted {where}; the checkpoint after epoch {saved_epoch} is in {run_dir}; continue with: {command}"


def finished_run_matches(config: TrainConfig, run_dir: str | Path) -> bool:
    """True when `run_dir` holds a finished run (checkpoint and metrics) of exactly `config`,
    at the precision `config` resolves to on this machine."""
    return _finished_run_difference(config, run_dir) == []


def _finished_run_difference(config: TrainConfig, run_dir: str | Path) -> list[str] | None:
    """None: no finished run in `run_dir`; else how its configuration differs from `config` ([]: not at all)."""
    from . import runs

    run_dir = Path(run_dir)
    if not ((run_dir / runs.METRICS).is_file() and (run_dir / runs.CHECKPOINT).is_file()):
        return None
    try:
        device = resolve_device(config.device)
        saved = recorded_precision(TrainConfig.from_dict(runs.load_checkpoint(run_dir)["config"]), run_dir, device)
        if len(runs.read_history(run_dir / runs.HISTORY)) != saved.epochs:
            return None
    except (CifarError, OSError):
        return None
    return _config_differences(saved.to_dict(), with_precision(config, device).to_dict())


def fit_or_reuse(config: TrainConfig, *, run_dir: str | Path, reuse: bool = True, resume: bool = False,
                 log=print, **fit_kwargs) -> FitResult:
    """`fit` into `run_dir`, unless it already holds this very run finished (then load it) or,
    with `resume`, an interrupted one (then continue it). A run of another config is replaced.

    Re-running a notebook or the report then costs no training when nothing changed. A run
    trained at another precision (say bf16 where "auto" now means fp32) is not this run.
    """
    from . import runs

    config = config.validate()
    run_dir = Path(run_dir)
    difference = _finished_run_difference(config, run_dir) if reuse else None
    if difference == []:
        loaded = runs.load_run(run_dir, resolve_device(config.device))
        commit = (loaded.metrics or {}).get("provenance", {}).get("git_commit", "unknown")
        log(f"reusing the finished run in {run_dir} (same configuration, {loaded.config.precision}, trained at commit "
            f"{commit}); set REUSE=False / delete the folder to train it again")
        return FitResult(loaded.model, loaded.config, loaded.history, loaded.metrics, run_dir, reused=True)
    if difference and all(d.startswith("precision:") for d in difference):
        log(f"not reusing {run_dir}: {difference[0]}; training it again at this machine's precision")
    if resume and (run_dir / runs.CHECKPOINT).is_file():
        return fit(config, run_dir=run_dir, resume=True, log=log, **fit_kwargs)
    return fit(config, run_dir=run_dir, overwrite=True, log=log, **fit_kwargs)
