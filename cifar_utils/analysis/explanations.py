"""What a prediction looks at: Grad-CAM on a convolution and the gradient saliency of the input, from
Captum (PyTorch's attribution library).

Grad-CAM (Selvaraju et al., 2017) weights a layer's feature maps by the mean gradient of the class
logit over each map, sums them and keeps the positive part: a coarse map of the regions that raise
the class, upsampled here to the image. Saliency (Simonyan et al., 2014) is the absolute gradient of
the class logit with respect to each pixel, its largest over the three channels: a fine map of the
pixels whose change would move the logit most.

The models take uint8 images and normalise them inside (models.Classifier); here they get the same
pixels as floats on the 0-255 scale, so gradients are per pixel level, in fp32 and eval mode.
"""

from __future__ import annotations

import warnings

import torch
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from torch import nn

from ..errors import ConfigError


def last_conv(model: nn.Module) -> nn.Module:
    """The network's last convolution: the output of its last conv block, where Grad-CAM is usually taken
    (8x8 in the seed CNN, 4x4 in the fast net and ResNet-18)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM; pass the layer to use")
    return convs[-1]


def _inputs(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    device = next(model.parameters()).device
    return images.detach().to(device=device, dtype=torch.float32).requires_grad_(True)


def _targets(targets, n: int, device) -> torch.Tensor:
    targets = torch.as_tensor(targets, device=device).long().reshape(-1)
    if len(targets) not in (1, n):
        raise ConfigError(f"give one target class, or one per image ({n}); got {len(targets)}")
    return targets.expand(n) if len(targets) == 1 else targets


class _EvalMode:
    """The model in eval mode for the attribution, as it was afterwards."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def grad_cam(model: nn.Module, images: torch.Tensor, targets, layer: nn.Module | None = None) -> torch.Tensor:
    """(N, H, W) Grad-CAM of class `targets` (one per image, or one for all) at `layer` (default: last_conv),
    positive part, upsampled bilinearly to the image size; on the CPU, float32."""
    layer = layer or last_conv(model)
    x = _inputs(images, model)
    with _EvalMode(model):
        cam = LayerGradCam(model, layer).attribute(
            x, target=_targets(targets, len(x), x.device), relu_attributions=True
        )
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam[:, 0].detach().clamp(min=0).float().cpu()


def saliency(model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
    """(N, H, W) largest absolute gradient over the channels of class `targets`' logit, per pixel; CPU float32."""
    x = _inputs(images, model)
    with _EvalMode(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        grads = Saliency(model).attribute(x, target=_targets(targets, len(x), x.device), abs=True)
    return grads.amax(dim=1).detach().float().cpu()


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each (H, W) map scaled to [0, 1] by its own maximum (an all-zero map stays zero), for display."""
    peak = maps.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return maps / peak
