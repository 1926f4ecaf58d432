"""BatchNorm whose statistics are those of the global batch when a run trains on several processes.

Under torchrun each rank sees only its slice of every batch (distributed.py). Plain BatchNorm
would normalise each slice by its own mean and variance, so a run on N processes would compute
another function than the same run on one (ghost batches of b/N), with results that depend on N.
`SyncedBatchNorm2d` sums the statistics over all ranks instead.

torch's own `nn.SyncBatchNorm` is not used: it refuses CPU tensors (a gloo run could not use it)
and replacing the fast net's BatchNorm with it would drop that one's fp32 forward. The cost here
is two small all-reduces (C+1 and C numbers) per BatchNorm layer in the forward pass and two in
the backward; each rank's gradient then includes what its images did to the others' statistics.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _several_processes() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _SumAcrossRanks(torch.autograd.Function):
    """all_reduce(SUM) with a gradient: every rank's input feeds every rank's output, so the gradient
    of each input is the sum of all ranks' output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch, over all ranks.

    Two-pass (the mean, then the mean squared deviation from it), in fp32 or fp64, never in half
    precision: as exact as one process's BatchNorm up to the order of the sums. In eval mode, or in
    a single process, plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _several_processes()):
            return super().forward(x)
        dims = (0, 2, 3)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics never in half precision
        # The count rides along (filled on the device: no host-to-GPU copy, no sync).
        local = torch.cat([xf.sum(dims), xf.new_full((1,), xf.numel() / xf.shape[1])])
        total = _SumAcrossRanks.apply(local)
        count = total[-1].detach()
        mean = total[:-1] / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = _SumAcrossRanks.apply((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        self._update_running_stats(mean.detach(), var.detach(), count)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        """As nn.BatchNorm2d does: exponential (or, momentum None, cumulative) average; unbiased variance."""
        if not self.track_running_stats or self.running_mean is None:
            return
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean), factor)
        self.running_var.lerp_((var * count / (count - 1).clamp_min(1)).to(self.running_var), factor)


_SYNCED: dict[type, type] = {nn.BatchNorm2d: SyncedBatchNorm2d}


def _synced_class(cls: type) -> type:
    """The synchronised version of a BatchNorm2d class: a subclass of both, so that a subclass's own
    forward (the fast net's fp32 one) still runs and calls the synchronised statistics beneath it."""
    if cls not in _SYNCED:
        _SYNCED[cls] = type(f"Synced{cls.__name__}", (cls, SyncedBatchNorm2d), {"__module__": __name__})
    return _SYNCED[cls]


def sync_batch_norms(model: nn.Module) -> list[tuple[nn.Module, type]]:
    """Make every BatchNorm2d of `model` synchronised, in place; returns each module with its old class.

    The class of each module is changed, nothing else: the same parameters and buffers, the same
    state_dict keys, so checkpoints load in a single process as before. Setting `__class__` back
    undoes it (distributed.session does, when the run ends).
    """
    changed = []
    for module in model.modules():
        cls = type(module)
        if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SyncedBatchNorm2d):
            module.__class__ = _synced_class(cls)
            changed.append((module, cls))
    return changed
