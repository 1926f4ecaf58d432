"""The fast recipe's network: a frozen whitening conv fitted to the data, then three conv blocks.

Ideas from the airbench paper (Jordan 2024, arXiv 2404.00498) and its predecessors; the code is
our own. Every unusual choice carries a one-line reason. `models.py` registers it as "fast"; the
recipe's other pieces live where their kind does (augment.py, optim.py, inference.py).
"""

from __future__ import annotations

import torch
from torch import nn

# ----------------------------------------------------------------------------- network


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm with its scale fixed at 1 (only the bias learns); fp32 parameters and statistics.

    A learned scale is redundant before a conv that is itself free to scale; fixing it removes
    parameters that only slow SGD down. Under autocast the activations stay in bf16 (PyTorch's
    mixed-dtype batch norm accumulates the statistics in fp32): on an AVX-512 BF16 CPU a norm on
    bf16 input ran 2x faster than the fp32 one, and GELU after it 1.4x faster (one noisy session).
    """

    def __init__(self, num_features: int, momentum: float = 0.4, eps: float = 1e-12):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):  # autocast would run it in fp32
            return super().forward(x)


class DiracConv(nn.Conv2d):
    """3x3 conv, no bias, whose first `in_channels` filters start as the identity.

    The identity part lets the signal pass through a fresh network unchanged, so early steps
    train like a shallower net; the remaining filters keep PyTorch's random init.
    """

    def __init__(self, c_in: int, c_out: int, matmul_max_size: int = 0):
        super().__init__(c_in, c_out, kernel_size=3, padding=1, bias=False)
        # Maps this small or smaller are convolved as one matrix product (shifted_views_conv) on a CPU.
        self.matmul_max_size = int(matmul_max_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and 0 < max(x.shape[-2:]) <= self.matmul_max_size:
            return shifted_views_conv(x, self.weight)
        return super().forward(x)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        n = min(self.in_channels, self.out_channels)
        with torch.no_grad():
            self.weight[:n].zero_()
            self.weight[torch.arange(n), torch.arange(n), 1, 1] = 1.0


def shifted_views_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 convolution (padding 1, stride 1, no bias) as one matrix product: the nine shifted views of the
    padded channels-last input side by side along channels, times the filters.

    On an AMX Xeon oneDNN ran the fast net's 256-channel convolutions on 7x7 and 3x3 maps at a half and a
    quarter of its rate on larger maps; this product ran them 1.2x and 1.9x faster, forward and backward
    (bench/conv_as_matmul.py). On 15x15 maps it lost, hence only for small maps.
    """
    b, c, h, w = x.shape
    padded = nn.functional.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (b, h+2, w+2, c)
    views = torch.cat([padded[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], dim=3)
    filters = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], 9 * c)  # (out, (row, col, channel))
    out = views.reshape(b * h * w, 9 * c) @ filters.t()
    return out.reshape(b, h, w, -1).permute(0, 3, 1, 2)  # NCHW view of channels-last memory


class ConvBlock(nn.Module):
    """conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU (pooling early: 4x fewer FLOPs after it)."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float, matmul_max_size: int = 0):
        super().__init__()
        self.conv1 = DiracConv(c_in, c_out, matmul_max_size)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(c_out, bn_momentum)
        self.conv2 = DiracConv(c_out, c_out, matmul_max_size)
        self.norm2 = FrozenScaleBatchNorm(c_out, bn_momentum)
        self.act = nn.GELU()

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    """Frozen 2x2 whitening conv, three ConvBlocks, global max-pool, a linear head scaled by `head_scale`.

    About 2M parameters at widths (64, 256, 256), 118M multiply-adds per image. `matmul_max_size` > 0
    convolves maps of at most that size as one matrix product on a CPU (see shifted_views_conv); 0 (the
    default, and the recipe's) leaves every convolution to oneDNN.
    """

    PATCH = 2

    def __init__(
        self,
        widths=(64, 256, 256),
        bn_momentum: float = 0.4,
        head_scale: float = 1 / 9,
        whiten_eps: float = 5e-4,
        num_classes: int = 10,
        head_init_std: float | None = None,
        whiten: bool = True,
        matmul_max_size: int = 0,
    ):
        super().__init__()
        n_patch = 3 * self.PATCH * self.PATCH
        # Both signs of every whitened direction: GELU then sees each feature's two halves.
        self.whiten = nn.Conv2d(3, 2 * n_patch, self.PATCH, padding=0, bias=True)
        # whiten=False (notebook 04's "no whitening" arm): the same 2x2 conv, randomly initialised and trained
        # like the others instead of fitted to the data and frozen.
        self.whitened = bool(whiten)
        self.whiten.weight.requires_grad_(not self.whitened)
        nn.init.zeros_(self.whiten.bias)
        self.whiten_eps = whiten_eps
        self.act = nn.GELU()
        blocks, c_in = [], 2 * n_patch
        for width in widths:
            blocks.append(ConvBlock(c_in, int(width), bn_momentum, matmul_max_size))
            c_in = int(width)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        if head_init_std is not None:  # with head_scale 1/width: the head's parametrisation of airbench94_muon
            with torch.no_grad():
                self.head.weight.mul_(head_init_std / self.head.weight.std())
        # Small logits at the start keep the early label-smoothed loss gradients well scaled.
        self.head_scale = head_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.act(self.whiten(x)))
        return self.head(x.amax(dim=(2, 3))) * self.head_scale

    @torch.no_grad()
    def initialize_from_data(
        self, mean: torch.Tensor, std: torch.Tensor, train_images: torch.Tensor, max_images: int = 5000
    ) -> None:
        """Fit the whitening conv to the normalised training images' 2x2 patches (nothing without whitening)."""
        if not self.whitened:
            return
        weight, bias = whitening_filters(train_images, mean, std, self.PATCH, self.whiten_eps, max_images)
        self.whiten.weight.copy_(weight.to(self.whiten.weight))
        self.whiten.bias.copy_(bias.to(self.whiten.bias))


def patch_moments(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, patch: int = 2, chunk: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and covariance (d, d) in float64 of all `patch`x`patch` patches of the normalised images."""
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1).cpu()
    std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1).cpu()
    d = images.shape[1] * patch * patch
    total, outer, count = torch.zeros(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64), 0
    for start in range(0, len(images), chunk):
        x = (images[start : start + chunk].cpu().float() - mean) / std
        # (B, d, L): every patch a column, features ordered (channel, row, col) like a conv weight.
        cols = nn.functional.unfold(x, patch)
        total += cols.sum((0, 2)).double()
        outer += torch.bmm(cols, cols.transpose(1, 2)).sum(0).double()  # fp32 per image, fp64 across
        count += cols.shape[0] * cols.shape[2]
    mu = total / count
    return mu, outer / count - torch.outer(mu, mu)


def whitening_filters(
    images: torch.Tensor, mean, std, patch: int = 2, eps: float = 5e-4, max_images: int | None = 5000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight (2d, 3, p, p) and bias (2d,) whose first d outputs have identity covariance.

    Filters are the covariance's eigenvectors scaled by 1/sqrt(eigenvalue + eps), largest first,
    then the same filters negated; the bias removes the patch mean.
    """
    if max_images is not None and len(images) > max_images:
        images = images[torch.linspace(0, len(images) - 1, max_images).long()]  # spread over the split
    mu, cov = patch_moments(images, mean, std, patch)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    order = eigenvalues.argsort(descending=True)
    w = eigenvectors[:, order].T / torch.sqrt(eigenvalues[order].clamp_min(0) + eps)[:, None]
    b = -(w @ mu)
    c = images.shape[1]
    weight = torch.cat([w, -w]).reshape(-1, c, patch, patch).float()
    return weight, torch.cat([b, -b]).float()
