"""Classify your own pictures with a trained run: `python -m cifar_utils predict RUN_DIR IMAGE...`.

Every image becomes what the network was trained on, a uint8 (3, 32, 32) tensor:

- read with Pillow (PNG, JPEG, or anything else it opens; the first frame of an animation), once
  its header has shown that it is within MAX_PIXELS (a small file can unpack to gigabytes);
- turned upright by its EXIF orientation tag (phone photos);
- converted to RGB: transparent parts (modes RGBA, LA, PA, P with a transparent colour) are laid
  over white, what a viewer shows; 16-bit greyscale (I;16 and I, 32-bit, read as 16-bit) keeps its
  top 8 bits (a plain conversion would clip it to white); 32-bit float greyscale (F) is read as
  0-255, as Pillow reads it, with values outside clipped; 1-bit black and white becomes 0 and 255;
- resized to 32x32 with Pillow's bicubic filter, whose support widens with the reduction so
  that large photos are averaged down rather than aliased. The whole picture is squeezed
  into the square (no crop), so keep the object near the middle and the picture near square,
  as CIFAR-10's own images are.

A file that cannot be read gives an error for that file alone; the others are still classified.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .core.data import CLASSES
from .core.evaluation import predict_logits, resolve_device, resolve_precision
from .errors import CifarError
from .runs.run_files import load_run

SIZE = 32
TOP_K = 3
# The largest picture decoded: Pillow's own bomb limit (~89 million pixels, ~270 MB as RGB). Pillow
# itself only warns below twice that and decodes the whole picture; this refuses it first.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


class ImageError(CifarError):
    """One image could not be read or converted."""


def _to_rgb(img):
    img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img.convert("RGB")


def _check_size(img, path: Path, max_pixels: int) -> None:
    """Refuse a picture over the pixel budget from its header, before any pixel is decoded."""
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(
            f"{path}: {width}x{height} pixels ({width * height / 1e6:.3g} megapixels) is over the "
            f"limit of {max_pixels / 1e6:.3g} megapixels, refused before decoding it; "
            f"shrink the picture first (any size down to 32x32 will do)"
        )


def load_image(path: str | Path, max_pixels: int | None = None) -> torch.Tensor:
    """The image at `path` as a uint8 (3, 32, 32) tensor, or an ImageError that names the file.

    A picture whose header declares more than `max_pixels` (default MAX_PIXELS) is refused unread.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # _check_size says it, in one line
            img = Image.open(path)  # reads the header only
        with img:
            _check_size(img, path, MAX_PIXELS if max_pixels is None else max_pixels)
            img.load()
            rgb = _to_rgb(img).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (expected PNG or JPEG)") from None
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit: Pillow refuses it in open()
        raise ImageError(
            f"{path}: too large to open safely, refused before decoding it ({exc}); "
            f"shrink the picture first (any size down to 32x32 will do)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL reports damage in all of these
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{path}: the image is damaged or truncated ({detail[:200]})") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


@dataclass
class Prediction:
    """The top classes of one image (class name, probability), or the error that stopped it."""

    image: str
    top: list[tuple[str, float]] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "top": [{"class": c, "probability": p} for c, p in self.top]}


def top_classes(
    model: torch.nn.Module, images: torch.Tensor, k: int = TOP_K, **predict_kwargs
) -> list[list[tuple[str, float]]]:
    """Softmax probabilities of uint8 images (N, 3, 32, 32); the `k` most likely classes of each."""
    if len(images) == 0:
        return []
    probs = torch.softmax(predict_logits(model, images, **predict_kwargs), dim=1)
    values, indices = probs.topk(min(k, len(CLASSES)), dim=1)
    return [[(CLASSES[i], float(p)) for p, i in zip(vs.tolist(), ix.tolist())] for vs, ix in zip(values, indices)]


def predict_files(
    run_dir: str | Path, paths: list[str | Path], k: int = TOP_K, device: str = "auto"
) -> list[Prediction]:
    """Classify image files with the model of `run_dir`; one Prediction per path, in order.

    A bad run folder raises CifarError; a bad image only marks its own Prediction.
    """
    dev = resolve_device(device)
    run = load_run(run_dir, dev)
    predictions, loaded = [], []
    for path in paths:
        try:
            loaded.append((len(predictions), load_image(path)))
            predictions.append(Prediction(str(path)))
        except ImageError as exc:
            predictions.append(Prediction(str(path), error=str(exc)))
    if loaded:
        batch = torch.stack([image for _, image in loaded])
        tops = top_classes(run.model, batch, k, device=dev, precision=resolve_precision(run.config.precision, dev))
        for (index, _), top in zip(loaded, tops):
            predictions[index].top = top
    return predictions


def prediction_table(predictions: list[Prediction]) -> str:
    """A plain-text table: one row per classified image, its top classes with probabilities."""
    done = [p for p in predictions if p.error is None]
    if not done:
        return ""
    k = max(len(p.top) for p in done)
    header = ["image"] + [f"top-{i + 1}" for i in range(k)]
    rows = [[p.image] + [f"{c} {100 * prob:5.1f}%" for c, prob in p.top] for p in done]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header] + rows)
