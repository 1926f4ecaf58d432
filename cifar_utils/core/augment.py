"""Every training augmentation behind one interface, and the registry of their names.

An augmentation answers one question per epoch, `for_epoch(images, seed, epoch)`: which images
the epoch trains on (the whole split, possibly transformed as a whole, as the alternating flip
does) and what is done to each batch cut from them (a `BatchAugment`, or None). Batches are
augmented as whole uint8 tensors: one gather per batch, no per-image Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError

# ----------------------------------------------------------------------------- batch transforms


def random_crop(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None, mode: str = "reflect"
) -> torch.Tensor:
    """Translate every image by up to `pad` pixels: pad, then cut a random window of the original size."""
    if pad <= 0:
        return images
    n, c, h, w = images.shape
    # Reflect padding is implemented for floating point only; the values stay whole numbers.
    padded = torch.nn.functional.pad(images.float() if mode == "reflect" else images, (pad,) * 4, mode=mode)
    padded = padded.to(images.dtype)
    dev = images.device
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w, device=dev)[None, :]  # (n, w)
    batch_index = torch.arange(n, device=dev)[:, None, None, None]
    chan_index = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch_index, chan_index, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half (in expectation) of the batch left-right."""
    flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@dataclass(frozen=True)
class BatchAugment:
    """Per-batch augmentation: translation by up to `pad` pixels, then random horizontal flips."""

    flip: bool = True
    pad: int = 4
    pad_mode: str = "reflect"

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.pad:
            images = random_crop(images, self.pad, generator, self.pad_mode)
        if self.flip:
            images = random_flip(images, generator)
        return images

    def for_epoch(self, images: torch.Tensor, seed: int, epoch: int) -> tuple[torch.Tensor, BatchAugment]:
        return images, self


class NoAugment:
    """The images as they are (the seed project)."""

    def for_epoch(self, images: torch.Tensor, seed: int, epoch: int) -> tuple[torch.Tensor, None]:
        return images, None

    def __repr__(self) -> str:
        return "NoAugment()"


# ----------------------------------------------------------------------------- alternating flip


def _base_flip_mask(n: int, seed: int) -> torch.Tensor:
    """Exactly half of the n images, chosen by the seed alone (no generator state to checkpoint)."""
    gen = torch.Generator().manual_seed(int(seed) * 7919 + 104729)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=gen)[: n // 2]] = True
    return mask


def alternating_flip_mask(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of the n training images are mirrored in `epoch` (1-based).

    Epoch 1 mirrors a seeded random half; every later epoch mirrors exactly the others, so each
    image is seen both ways in every two epochs instead of at random. A pure function of
    (n, seed, epoch): resuming at any epoch gives the same masks.
    """
    mask = _base_flip_mask(n, seed)
    return ~mask if epoch % 2 == 0 else mask


class AlternatingFlip:
    """Mirror per `alternating_flip_mask` (the whole split, once an epoch), then translate batches by up to `pad` px."""

    def __init__(self, pad: int = 2, pad_mode: str = "reflect"):
        self.pad = pad
        self.batch_augment = BatchAugment(flip=False, pad=pad, pad_mode=pad_mode) if pad else None

    def for_epoch(self, images: torch.Tensor, seed: int, epoch: int) -> tuple[torch.Tensor, BatchAugment | None]:
        mask = alternating_flip_mask(len(images), seed, epoch).to(images.device)
        return torch.where(mask[:, None, None, None], images.flip(-1), images), self.batch_augment

    def __repr__(self) -> str:
        return f"AlternatingFlip(pad={self.pad})"


# ----------------------------------------------------------------------------- the registry

AUGMENTATIONS = {
    "none": NoAugment(),
    "flip": BatchAugment(flip=True, pad=0),
    "translate": BatchAugment(flip=False, pad=4),
    "flip+translate": BatchAugment(flip=True, pad=4),
    # Mirror alternate halves of the data in alternate epochs (seeded), translate by up to 2 px.
    "alt_flip+translate2": AlternatingFlip(pad=2),
    "alt_flip": AlternatingFlip(pad=0),  # the same without translation: the ablation's "no translation" arm
}


def register_augmentation(name: str, augmentation) -> None:
    """Offer `augmentation` as `augment=name` (--augment, AUGMENT): anything with
    `for_epoch(images, seed, epoch) -> (images, batch transform or None)`, such as a `BatchAugment`.
    A name registered again is replaced."""
    if not callable(getattr(augmentation, "for_epoch", None)):
        raise ConfigError(f"augmentation {name!r} needs a for_epoch(images, seed, epoch) method, got {augmentation!r}")
    AUGMENTATIONS[name] = augmentation
