"""Running a trained model: the device, the precision ("auto" decided per machine), autocast, and
predictions, test-time augmentation and evaluation built on them."""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
from torch import nn

from ..errors import ConfigError
from . import cpu
from .config import DEVICES, TTA_MODES, TrainConfig
from .metrics import loss_and_accuracy

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
    forced = cpu.forced_precision()
    if forced is not None:
        if forced not in PRECISION_DTYPES:
            raise ConfigError(
                f"${cpu.PRECISION_ENV} is {forced!r}; set it to one of {', '.join(PRECISION_DTYPES)}, "
                f"or unset it to let the CPU decide"
            )
        return forced
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu.has_native_bf16() else "fp32"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    return PRECISION_DTYPES[precision_name(precision, device)]


def replay_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype to evaluate a trained run in again: the run's own, except bf16 on a CPU without bf16
    instructions (a record another machine made, reused here), which evaluates in fp32: emulated bf16 is
    about 10x slower there, and fp32 holds every bf16 weight exactly (the logits differ in rounding only)."""
    dtype = resolve_precision(precision, device)
    if dtype is torch.bfloat16 and device.type == "cpu" and not cpu.has_native_bf16():
        return None
    return dtype


def dtype_precision(dtype: torch.dtype | None) -> str:
    """ "fp32", "bf16" or "fp16" for an autocast dtype as resolve_precision and replay_precision give it."""
    return next(name for name, d in PRECISION_DTYPES.items() if d is dtype)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def with_precision(config: TrainConfig, device: torch.device) -> TrainConfig:
    """`config` with "auto" precision replaced by what it means on `device`."""
    return dataclasses.replace(config, precision=precision_name(config.precision, device))


# ----------------------------------------------------------------------------- test-time augmentation


def _mirror_mean(model: nn.Module, x: torch.Tensor, plain: torch.Tensor | None = None) -> torch.Tensor:
    plain = model(x).float() if plain is None else plain
    return 0.5 * (plain + model(x.flip(-1)).float())


def tta_logits(model: nn.Module, x: torch.Tensor, mode: str, plain: torch.Tensor | None = None) -> torch.Tensor:
    """Logits averaged over the views of `mode`; `plain` (model(x), if already computed) is reused.

    "mirror": the image and its mirror. "mirror+translate": half that, half the same pair for the
    image shifted one pixel up-left and one pixel down-right (reflect padding), 6 passes in all.
    """
    if mode == "none":
        return model(x).float() if plain is None else plain
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of: {', '.join(TTA_MODES)}")
    logits = _mirror_mean(model, x, plain)
    if mode == "mirror":
        return logits
    padded = nn.functional.pad(x.float(), (1, 1, 1, 1), mode="reflect")
    h, w = x.shape[-2:]
    shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
    return 0.5 * logits + 0.25 * sum(_mirror_mean(model, s) for s in shifted)


# ----------------------------------------------------------------------------- predictions and evaluation


def _tta_mode(tta: bool | str) -> str:
    """`--tta` as a flag means the mirror; a string names the mode."""
    if isinstance(tta, bool):
        return "mirror" if tta else "none"
    return tta


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 1000,
    device=None,
    precision: torch.dtype | None = None,
    tta: bool | str = False,
    tta_share: float = 1.0,
    with_plain: bool = False,
):
    """Logits (N, 10) as float32 on the CPU.

    `tta`: True or "mirror" averages the image with its mirror; "mirror+translate" also uses
    1-pixel translations (see tta_logits). `tta_share` < 1 gives the augmentation only to that share
    of the images whose plain prediction is least confident (lowest softmax maximum); the others keep
    their plain logits, which the extra views rarely overturn. `with_plain` returns (tta logits,
    plain logits), the plain ones from the same forward pass.
    """
    mode = _tta_mode(tta)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()

    def batches(idx: torch.Tensor):
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            yield chunk, images[chunk].to(device, non_blocking=True)

    everything = torch.arange(len(images))
    try:
        if mode == "none" or tta_share >= 1:  # one pass per batch: each image's views reuse its plain logits
            chunks, plain_chunks = [], []
            for _, x in batches(everything):
                with autocast(device, precision):
                    plain = model(x).float()
                    chunks.append(tta_logits(model, x, mode, plain).cpu())
                plain_chunks.append(plain.cpu())
            logits, plain = _cat(chunks), _cat(plain_chunks)
        else:
            plain_chunks = []
            for _, x in batches(everything):
                with autocast(device, precision):
                    plain_chunks.append(model(x).float().cpu())
            plain = _cat(plain_chunks)
            logits = plain.clone()
            uncertain = least_confident(plain, tta_share)
            for idx, x in batches(uncertain):
                with autocast(device, precision):
                    logits[idx] = tta_logits(model, x, mode, plain[idx].to(device)).cpu()
    finally:
        model.train(was_training)
    return (logits, plain) if with_plain else logits


def _cat(chunks: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(chunks) if chunks else torch.empty(0, 10)


def least_confident(logits: torch.Tensor, share: float) -> torch.Tensor:
    """Indices (ascending) of the `share` of rows with the lowest softmax maximum."""
    k = min(len(logits), math.ceil(share * len(logits)))
    confidence = logits.softmax(dim=1).amax(dim=1)
    return confidence.argsort(stable=True)[:k].sort().values


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
    """Mean cross-entropy loss and accuracy (a fraction) of `model` on a split.

    With test-time augmentation (`tta`), also "loss_no_tta" and "accuracy_no_tta".
    """
    tta = _tta_mode(kwargs.get("tta", False)) != "none"
    logits, plain = predict_logits(model, images, with_plain=True, **kwargs)
    if len(labels) == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "n": 0}
    loss, accuracy = loss_and_accuracy(logits, labels)
    result = {"loss": loss, "accuracy": accuracy, "n": len(labels)}
    if tta:
        result["loss_no_tta"], result["accuracy_no_tta"] = loss_and_accuracy(plain, labels)
    return result
