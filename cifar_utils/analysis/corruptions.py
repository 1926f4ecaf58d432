"""Corrupted copies of the test images, made here: CIFAR-10-C and CIFAR-10.1 cannot be downloaded on
these machines and no package ships them.

Each corruption takes the whole uint8 tensor (N, 3, 32, 32) at once (no per-image Python loop but
JPEG's, which torchvision's codec runs image by image) and returns a uint8 tensor of the same shape.
Randomness comes from a torch.Generator seeded by (seed, name, severity), so the same call always
gives the same images. Severities 1-5 use the CIFAR parameters of Hendrycks & Dietterich, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations" (ICLR 2019), with the formulas of
their description re-implemented in torch. Where ours differ:

| corruption | the paper (its CIFAR code) | here |
|---|---|---|
| every one | float result truncated to uint8 | rounded to the nearest level |
| gaussian_blur | skimage, edge pixels repeated | torchvision's gaussian_blur (same sigma, kernel cut at 4 sigma), edges reflected |
| motion_blur | ImageMagick's MotionBlurImage | the same one-sided Gaussian along a line (radius, sigma, angle within 45 degrees of horizontal), edge pixels repeated |
| zoom_blur | scipy zoom of a crop whose corner is rounded | torchvision's affine (bilinear) zoom about the exact centre |
| saturate | grey pixels (no hue) turn red at severities 4-5 (skimage's hue 0) | grey pixels stay grey |
| elastic_transform | affine warp then elastic warp, two interpolations; displacement blurred with half-pixel reflection | both composed into one bilinear sampling (edges reflected about the border pixels), displacement blurred the same way |

contrast, brightness and saturate follow the paper's formulas (per-channel mean; HSV value plus c;
HSV saturation times a plus b) rather than torchvision's adjust_contrast / adjust_brightness /
adjust_saturation, which compute other things (a blend towards one grey level, a product, a blend
with the grey image). jpeg_compression (torchvision's jpeg) gives PIL's pixels exactly (checked on
500 test images); pixelate uses PIL's BOX weights (PIL also rounds between its two passes: a mean
difference under 0.4 of a level). The remaining noise and defocus formulas are the paper's.

`cached` keeps each result as one .pt file per (corruption, severity) under a cache folder (default
<outputs>/cache/corruptions), named by a digest of the name, severity, seed, CODE_VERSION and the
images themselves, so a re-run loads instead of generating; the file also records how long making
it took, with which CPU and threads. 10,000 images take 30.7 MB per file, 2 GB for all 65.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from ..core.cpu import cpu_model
from ..errors import ConfigError, disk_error
from ..paths import outputs_dir
from ..runs import atomic

CODE_VERSION = 1  # part of every cache key: change it when a corruption's output changes
SEVERITIES = (1, 2, 3, 4, 5)
CACHE_SUBDIR = Path("cache") / "corruptions"

# The paper's CIFAR parameters, severity 1 first.
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # std on the 0-1 scale
SHOT_NOISE = (500, 250, 100, 75, 50)  # photons at full intensity
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # share of values set to 0 or 1
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # sigma in pixels
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))  # disk radius, anti-alias sigma
MOTION_BLUR = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))  # radius, sigma
ZOOM_BLUR = (1.05, 1.10, 1.15, 1.20, 1.25)  # largest zoom; every 0.01 from 1 is averaged
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
SATURATE = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))  # HSV saturation * a + b
JPEG_QUALITY = (80, 65, 58, 50, 40)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # side of the coarse image, as a share of 32
ELASTIC = (
    (0.0, 0.0, 2.56),
    (1.6, 6.4, 2.24),
    (2.56, 1.92, 1.92),
    (3.2, 1.28, 1.6),
    (3.2, 0.96, 0.96),
)  # alpha, sigma, affine shift (px)


# ----------------------------------------------------------------------------- helpers (float images in [0, 1])


def _gaussian_kernel1d(sigma: float, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def _reflect_blur_matrix(n: int, sigma: float, truncate: float) -> torch.Tensor:
    """(n, n) Gaussian blur along one axis, edges reflected (d c b | a b c d), kernel cut at int(truncate*sigma + 0.5)
    pixels as scipy/skimage cut it: torchvision's gaussian_blur as a matrix (tests check they agree)."""
    radius = int(truncate * sigma + 0.5)
    kernel = _gaussian_kernel1d(sigma, radius)
    source = torch.arange(n)[:, None] + torch.arange(-radius, radius + 1)[None, :]
    period = 2 * (n - 1)
    source = source % period
    source = torch.where(source >= n, period - source, source)  # reflection without repeating the edge
    matrix = torch.zeros(n, n)
    matrix.scatter_add_(1, source, kernel.expand(n, -1).contiguous())
    return matrix


def _separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """rows @ image @ cols^T for every channel of every image: two matrix products, where a depthwise convolution
    on the CPU runs at a small fraction of the speed (1.8 s for one 13-tap pass over 10,000 two-channel fields)."""
    return torch.einsum("ih,nchw,jw->ncij", rows, x, cols)


def _blur(x: torch.Tensor, sigma: float, truncate: float) -> torch.Tensor:
    return _separable(
        x, _reflect_blur_matrix(x.shape[-2], sigma, truncate), _reflect_blur_matrix(x.shape[-1], sigma, truncate)
    )


def _filter(x: torch.Tensor, kernel: torch.Tensor, padding_mode: str = "reflect") -> torch.Tensor:
    """Correlate every channel with one odd-sized 2-D kernel, edges padded by `padding_mode`."""
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    c = x.shape[1]
    padded = F.pad(x, (rx, rx, ry, ry), mode=padding_mode)
    return F.conv2d(padded, kernel.expand(c, 1, *kernel.shape).contiguous(), groups=c)


def _value_and_min(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.amax(dim=1, keepdim=True), x.amin(dim=1, keepdim=True)


# ----------------------------------------------------------------------------- the corruptions


def gaussian_noise(x, severity, gen):
    return x + torch.randn(x.shape, generator=gen) * GAUSSIAN_NOISE[severity - 1]


def shot_noise(x, severity, gen):
    photons = SHOT_NOISE[severity - 1]
    return torch.poisson(x * photons, generator=gen) / photons


def impulse_noise(x, severity, gen):
    """Salt and pepper on every value (each channel of each pixel) independently, half each."""
    hit = torch.rand(x.shape, generator=gen) < IMPULSE_NOISE[severity - 1]
    salt = torch.rand(x.shape, generator=gen) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def gaussian_blur(x, severity, gen):
    sigma = GAUSSIAN_BLUR[severity - 1]
    size = 2 * int(4.0 * sigma + 0.5) + 1  # skimage cuts its kernel at 4 sigma
    return TF.gaussian_blur(x, kernel_size=[size, size], sigma=[sigma, sigma])


def defocus_blur(x, severity, gen):
    """A disk of the given radius on a 17x17 grid, anti-aliased by a 3x3 Gaussian (the paper's kernel)."""
    radius, alias = DEFOCUS_BLUR[severity - 1]
    grid = torch.arange(-8, 9, dtype=torch.float32)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).float()
    disk /= disk.sum()
    g = _gaussian_kernel1d(alias, 1)
    kernel = F.conv2d(disk[None, None], (g[:, None] * g[None, :])[None, None], padding=1)[0, 0]
    keep = kernel.abs().sum(0) > 0  # trim the all-zero border: same result, far fewer multiply-adds
    kernel = kernel[keep][:, keep]
    return _filter(x, kernel)


def motion_blur(x, severity, gen):
    """ImageMagick's motion blur: a one-sided Gaussian over 2*radius+1 steps along a line whose angle is
    drawn per image within 45 degrees of horizontal; each step reads the nearest pixel."""
    radius, sigma = MOTION_BLUR[severity - 1]
    n, c, h, w = x.shape
    width = 2 * math.ceil(radius) + 1
    weights = _gaussian_kernel1d(sigma, width - 1)[width - 1 :]  # the one-sided half: steps 0 .. width-1
    weights = weights / weights.sum()
    weights = weights[weights >= 1e-6]  # a lighter step moves no pixel by 1/3000 of a level, at the full cost of a step
    angle = torch.deg2rad((torch.rand(n, generator=gen) * 2 - 1) * 45)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for step, weight in enumerate(weights.tolist()):
        dx = torch.round(step * torch.cos(angle)).long().view(n, 1, 1)
        dy = torch.round(step * torch.sin(angle)).long().view(n, 1, 1)
        index = ((rows + dy).clamp(0, h - 1) * w + (cols + dx).clamp(0, w - 1)).view(n, 1, h * w)
        out += weight * flat.gather(2, index.expand(n, c, h * w))
    return out.view(n, c, h, w)


def zoom_blur(x, severity, gen):
    """The mean of the image and its zooms about the centre by 1.01, 1.02, ... up to the severity's factor."""
    steps = round((ZOOM_BLUR[severity - 1] - 1) / 0.01)
    out = x.clone()
    for k in range(1, steps + 1):
        out += TF.affine(
            x,
            angle=0.0,
            translate=[0.0, 0.0],
            scale=1 + 0.01 * k,
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
    return out / (steps + 1)


def contrast(x, severity, gen):
    mean = x.mean(dim=(2, 3), keepdim=True)  # per image and channel, as the paper
    return (x - mean) * CONTRAST[severity - 1] + mean


def brightness(x, severity, gen):
    """HSV value plus c, hue and saturation kept: every channel scales by the new value over the old."""
    value, _ = _value_and_min(x)
    lifted = (value + BRIGHTNESS[severity - 1]).clamp(max=1.0)
    return torch.where(value > 0, x * lifted / value.clamp(min=1e-12), lifted.expand_as(x))


def saturate(x, severity, gen):
    """HSV saturation times a plus b, hue and value kept: each channel's distance below the value scales
    by the new saturation over the old (grey pixels have no hue and stay grey)."""
    a, b = SATURATE[severity - 1]
    value, low = _value_and_min(x)
    sat = torch.where(value > 0, (value - low) / value.clamp(min=1e-12), torch.zeros_like(value))
    new = (sat * a + b).clamp(0.0, 1.0)
    ratio = torch.where(sat > 0, new / sat.clamp(min=1e-12), torch.zeros_like(sat))
    return value - (value - x) * ratio


def jpeg_compression(x, severity, gen):
    """Encoded and decoded by libjpeg at the paper's quality: uint8 in, uint8 out, PIL's pixels exactly."""
    with warnings.catch_warnings():  # torchvision 0.29 points its codecs to TorchCodec; they still work, and PIL agrees
        warnings.filterwarnings(
            "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
        )
        return TF.jpeg(x, quality=JPEG_QUALITY[severity - 1])


def _box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of PIL's BOX resampling along one axis: each output pixel averages the input
    pixels whose centres fall inside its footprint (at least one, when enlarging)."""
    scale = n_in / n_out
    footprint = max(scale, 1.0)
    centres = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    offset = (torch.arange(n_in, dtype=torch.float64)[None, :] + 0.5 - centres[:, None]) / footprint
    weights = ((offset >= -0.5) & (offset < 0.5)).double()
    return (weights / weights.sum(1, keepdim=True)).float()


def _resample(x: torch.Tensor, size: int) -> torch.Tensor:
    return _separable(x, _box_matrix(x.shape[-2], size), _box_matrix(x.shape[-1], size))


def pixelate(x, severity, gen):
    """Down to int(32 * c) pixels a side and back up, both with a BOX filter, kept as 8-bit in between as PIL does."""
    small = _resample(x, int(x.shape[-1] * PIXELATE[severity - 1]))
    return _resample((small * 255).round() / 255, x.shape[-1])


def elastic_transform(x, severity, gen):
    """A random affine map (three control points moved by up to the shift) composed with a smooth random
    displacement (uniform noise blurred by sigma, times alpha), sampled once, bilinear, edges reflected."""
    alpha, sigma, shift = ELASTIC[severity - 1]
    n, _, h, w = x.shape
    centre, half = h // 2, h // 3
    # The paper's control points; warpAffine samples the source at the inverse map, solved for here directly.
    src = torch.tensor(
        [[centre + half, centre + half], [centre + half, centre - half], [centre - half, centre - half]],
        dtype=torch.float64,
    ).expand(n, 3, 2)
    dst = src + (torch.rand((n, 3, 2), generator=gen, dtype=torch.float64) * 2 - 1) * shift
    inverse = torch.linalg.solve(torch.cat([dst, torch.ones(n, 3, 1, dtype=torch.float64)], 2), src)  # (n, 3, 2)
    fields = torch.rand((n, 2, h, w), generator=gen) * 2 - 1
    displacement = _blur(fields, sigma, truncate=3.0) * alpha if alpha > 0 else torch.zeros_like(fields)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    px, py = xs + displacement[:, 0], ys + displacement[:, 1]
    points = torch.stack([px, py, torch.ones_like(px)], -1).double()  # (n, h, w, 3)
    source = torch.einsum("nhwk,nkj->nhwj", points, inverse).float()
    grid = torch.stack([2 * source[..., 0] / (w - 1) - 1, 2 * source[..., 1] / (h - 1) - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "contrast": contrast,
    "brightness": brightness,
    "saturate": saturate,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
    "elastic_transform": elastic_transform,
}
UINT8_IN = {"jpeg_compression"}  # works on the uint8 images themselves
FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "gaussian_blur", "motion_blur", "zoom_blur"),
    "digital": ("contrast", "brightness", "saturate", "jpeg_compression", "pixelate", "elastic_transform"),
}
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}
# Severity is not an ordering of pixel change for these two in the paper's parameters: saturate lowers
# saturation at 1-2 and raises it at 3-5; elastic's severity 1 is the largest affine shift with no elastic part.
NOT_MONOTONE = {"saturate", "elastic_transform"}


# ----------------------------------------------------------------------------- entry points


def _check_name(name: str) -> None:
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; choose from: {', '.join(CORRUPTIONS)}")


def _check_severity(severity: int) -> None:
    if severity not in SEVERITIES or isinstance(severity, bool):
        raise ConfigError(f"severity must be one of {SEVERITIES}, got {severity!r}")


def check_request(name: str, severity: int) -> None:
    _check_name(name)
    _check_severity(severity)


def requested(names=None, severities=None) -> tuple[list[str], list[int]]:
    """The corruptions and severities asked for (None: all of them; one name or number: a list of one), checked."""
    names = [names] if isinstance(names, str) else list(names or CORRUPTIONS)
    severities = [severities] if isinstance(severities, int) else list(severities or SEVERITIES)
    for name in names:
        _check_name(name)
    for severity in severities:
        _check_severity(severity)
    return names, severities


def _stream_seed(seed: int, name: str, severity: int) -> int:
    """A seed of its own per (seed, corruption, severity), the same on every machine and Python."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}/{severity}".encode()).digest()[:8], "little") & (2**63 - 1)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """The images (uint8, N x 3 x H x W) with one corruption at one severity (1-5), as uint8."""
    check_request(name, severity)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"corrupt expects uint8 images shaped (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if len(images) == 0:
        return images.clone()
    gen = torch.Generator().manual_seed(_stream_seed(seed, name, severity))
    if name in UINT8_IN:
        return CORRUPTIONS[name](images, severity, gen)
    out = CORRUPTIONS[name](images.float() / 255, severity, gen)
    return (out * 255).round_().clamp_(0, 255).to(torch.uint8)


def images_digest(images: torch.Tensor) -> str:
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_key(name: str, severity: int, seed: int, images_sha: str) -> str:
    """The file name of one cached result: readable prefix, digest of everything that decides its pixels."""
    payload = f"{name}/{severity}/{seed}/v{CODE_VERSION}/{images_sha}"
    return f"{name}-s{severity}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}.pt"


def default_cache_dir(outputs: str | os.PathLike | None = None) -> Path:
    return outputs_dir(outputs) / CACHE_SUBDIR


@dataclass
class Corrupted:
    """One corrupted copy of the images, and what making it cost (recorded when it was made)."""

    images: torch.Tensor
    seconds: float
    threads: int
    cpu: str
    from_cache: bool


def _read(path: Path, shape) -> Corrupted | None:
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged file fails inside torch.load in many ways; it is made again
        return None
    images = found.get("images") if isinstance(found, dict) else None
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or tuple(images.shape) != tuple(shape):
        return None
    return Corrupted(
        images,
        float(found.get("seconds", float("nan"))),
        int(found.get("threads", 0)),
        str(found.get("cpu", "")),
        from_cache=True,
    )


def cached(
    images: torch.Tensor,
    name: str,
    severity: int,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    images_sha: str | None = None,
) -> Corrupted:
    """`corrupt`, kept on disk: loaded when this (name, severity, seed, code version, images) was made before.

    Pass `images_sha` (images_digest) when calling many times on the same images, to hash them once.
    """
    check_request(name, severity)
    path = Path(cache_dir or default_cache_dir()) / cache_key(name, severity, seed, images_sha or images_digest(images))
    if path.is_file() and (found := _read(path, images.shape)) is not None:
        return found
    started = time.perf_counter()
    result = Corrupted(
        corrupt(images, name, severity, seed),
        time.perf_counter() - started,
        torch.get_num_threads(),
        cpu_model(),
        from_cache=False,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.torch_save(
            {"images": result.images, "seconds": result.seconds, "threads": result.threads, "cpu": result.cpu}, path
        )
    except OSError as exc:
        raise disk_error(exc.filename or path, exc, "write the corruption cache in") from None
    return result
