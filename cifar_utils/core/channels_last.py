"""The channels_last memory layout, and the convolutions that must not use it.

channels_last (NHWC) is the faster layout for oneDNN's CPU convolutions, so models are built in it
(TrainConfig.channels_last). One shape is broken there: oneDNN's backward-weights kernel of a 1x1
convolution with a stride above 1 and fewer input channels than the ISA's channel block (8 floats
on AVX2, 16 on AVX-512) writes past its workspace (oneDNN issue #6035). Depending on the CPU and
the thread count that hangs, crashes (segfault, "double free or corruption") or silently returns
wrong weight gradients. ResNet's strided shortcuts at small widths are such convolutions, e.g.
resnet18(width=4), which notebook 07 trains in smoke mode. `bench/probe_nhwc_1x1.py` finds the
shapes on a given CPU.

Those convolutions run in the contiguous (NCHW) layout instead, where oneDNN uses its blocked
kernels, which are correct; the tensors around them stay channels_last. They are tiny (at most 15
input channels), so the two layout conversions cost next to nothing. The rule takes the largest
block of any x86 ISA, so that it holds on every CPU this project meets.

$CIFAR_CHANNELS_LAST_GUARD=off switches the avoidance off, to show that the defect is still there
(tests/core/test_layout.py then fails on an AVX2 CPU); never set it for real work.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..paths import CHANNELS_LAST_GUARD_ENV as GUARD_ENV

# oneDNN's channel block on AVX-512 (16 fp32 lanes); AVX2's 8 is below it.
LARGEST_CHANNEL_BLOCK = 16


def guard_enabled() -> bool:
    return os.environ.get(GUARD_ENV, "").strip().lower() not in ("off", "0", "false", "no")


def avoids_channels_last(module: nn.Module) -> bool:
    """True for a convolution that this library runs in the contiguous layout inside a channels_last model."""
    if not isinstance(module, nn.Conv2d):
        return False
    one_by_one = tuple(module.kernel_size) == (1, 1)
    strided = any(s > 1 for s in module.stride)
    return one_by_one and strided and module.in_channels // module.groups < LARGEST_CHANNEL_BLOCK


def _contiguous_input(_module, inputs):
    return (inputs[0].contiguous(),) + tuple(inputs[1:])


def _channels_last_output(_module, _inputs, output):
    return output.contiguous(memory_format=torch.channels_last) if output.dim() == 4 else output


def to_channels_last(model: nn.Module) -> nn.Module:
    """`model` in channels_last, except the convolutions `avoids_channels_last` names (see the module's docstring)."""
    model = model.to(memory_format=torch.channels_last)
    if not guard_enabled():
        return model
    for module in model.modules():
        if avoids_channels_last(module):
            # A weight with channels_last strides alone makes PyTorch pick the NHWC kernel again. A 1x1 weight has
            # them and is "contiguous" all the same (its size-1 dimensions), so .contiguous() would keep them: clone.
            # .data keeps the Parameter, so optimizers and state_dict see the same object.
            module.weight.data = module.weight.data.clone(memory_format=torch.contiguous_format)
            module.register_forward_pre_hook(_contiguous_input)
            module.register_forward_hook(_channels_last_output)
    return model
