"""A registry of named models.

Every model takes uint8 or float images (B, 3, 32, 32) and returns logits (B, 10). The
normalisation constants travel inside the model (`Classifier`), so a saved checkpoint
classifies raw images without any other file.

Adding a model is one registration, here or in a module of your own (docs/extending.md):
`@register("name", smoke={...})` on a function that returns the network. The registration says what a
recipe needs to know: the model's smoke size and the keyword arguments (model_kwargs) it accepts.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .channels_last import to_channels_last
from .fastnet import FastNet


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it, its smoke size, and the keyword arguments (model_kwargs) it takes."""

    builder: Callable[..., nn.Module]
    smoke: dict  # keyword arguments that make it train in about a second (smoke reports, CI, notebook 07's smoke)
    options: frozenset[str]  # every keyword argument the builder accepts


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, *, smoke: dict, options: Iterable[str] | None = None):
    """Decorator: register `builder` under `name`, from inside the package or from any module of yours.

    `smoke`: the keyword arguments of a tiny version (what smoke runs and CI train; {} if the defaults are tiny).
    `options`: the keyword arguments it accepts; by default read from the builder's signature. A builder that
    forwards **kwargs must list them, since its signature does not say. A recipe's model_kwargs that the model
    does not accept are left out (core.config.recipe_config); ones given by hand are refused.
    """

    def wrap(builder: Callable[..., nn.Module]):
        accepted = frozenset(options) if options is not None else _signature_options(name, builder)
        unknown = sorted(set(smoke) - accepted)
        if unknown:
            raise ConfigError(
                f"model {name!r}: smoke size names {', '.join(unknown)}, which it does not accept "
                f"(it accepts: {', '.join(sorted(accepted)) or 'no options'})"
            )
        _REGISTRY[name] = ModelSpec(builder, dict(smoke), accepted)  # a name registered again is replaced
        return builder

    return wrap


def _signature_options(name: str, builder: Callable) -> frozenset[str]:
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        raise ConfigError(f"model {name!r}: its builder takes **kwargs; list what it accepts with options=[...]")
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def _spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(available_models())}")
    return _REGISTRY[name]


def model_options(name: str) -> frozenset[str]:
    """The keyword arguments (model_kwargs) the model accepts."""
    return _spec(name).options


def smoke_kwargs(name: str) -> dict:
    """The model's smoke size: keyword arguments that make it train in about a second."""
    return dict(_spec(name).smoke)


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """Refuse options the model does not accept, naming them and the ones it does (a TypeError deep in
    training would name neither the model nor the fix)."""
    accepted = model_options(name)
    refused = sorted(set(kwargs) - accepted)
    if refused:
        raise ConfigError(
            f"model {name!r} does not accept {', '.join(refused)}: remove {'it' if len(refused) == 1 else 'them'} "
            f"from model_kwargs (--model-kwargs, MODEL_KWARGS); it accepts: {', '.join(sorted(accepted)) or 'no options'}"
        )


def build_network(name: str, **kwargs) -> nn.Module:
    check_model_kwargs(name, kwargs)
    return _spec(name).builder(**kwargs)


class Classifier(nn.Module):
    """Normalises uint8 images with the training split's statistics, then runs `net`."""

    def __init__(self, net: nn.Module, mean, std, channels_last: bool = False):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.channels_last = channels_last

    def initialize_from_data(self, train_images: torch.Tensor) -> None:
        """Let a network that fits part of itself to the data (the fast net's whitening) do so."""
        if hasattr(self.net, "initialize_from_data"):
            self.net.initialize_from_data(self.mean, self.std, train_images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


def build_model(
    name: str, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channels_last: bool = False, **kwargs
) -> Classifier:
    model = Classifier(build_network(name, **kwargs), mean, std, channels_last)
    return to_channels_last(model) if channels_last else model


def count_macs(model: nn.Module, input_size=(1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass of one image (convolutions and linear layers)."""
    total = 0

    def conv_hook(module, _inp, out):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += out.numel() // out.shape[0] * k

    def linear_hook(module, _inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * module.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return total


# ----------------------------------------------------------------------------- seed_cnn


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register("seed_cnn", smoke={"widths": [8, 8, 8]})
def seed_cnn(widths=(16, 32, 64), dropout=(0.0, 0.1, 0.2), num_classes: int = 10) -> nn.Module:
    """The seed project's kind of CNN: three stages of two conv-BN-ReLU, max-pool and dropout.

    Narrow on purpose: on a 2-core CPU its 10 epochs of the seed recipe take minutes, not an
    hour, and it still lands near the seed's 78% validation accuracy.
    """
    layers: list[nn.Module] = []
    c_in = 3
    for width, p in zip(widths, dropout):
        layers += _conv_bn_relu(c_in, width) + _conv_bn_relu(width, width)
        layers += [nn.MaxPool2d(2), nn.Dropout(p)]
        c_in = width
    layers += [nn.Flatten(), nn.Linear(c_in * 4 * 4, num_classes)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- resnet


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register("resnet18", smoke={"width": 4})
def resnet18(num_classes: int = 10, width: int = 64) -> nn.Module:
    """The CIFAR variant of ResNet-18 (3x3 stem, no initial pooling); about 11M parameters."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    c_in = width
    for i, mult in enumerate((1, 2, 4, 8)):
        c_out = width * mult
        stride = 1 if i == 0 else 2
        layers += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- fast


@register(
    "fast",
    smoke={"widths": [8, 16, 16], "head_scale": 1 / 16},
    options=inspect.signature(FastNet).parameters,  # what it forwards to FastNet
)
def fast(widths=(64, 256, 256), **kwargs) -> nn.Module:
    """The airbench-style fast net (cifar_utils/fastnet.py): whitening conv, three conv blocks, ~2M parameters.

    `widths` sets the three blocks' channels; (32, 64, 64) costs 17M instead of 118M multiply-adds per image.
    """
    return FastNet(widths=tuple(widths), **kwargs)
