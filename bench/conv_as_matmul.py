"""A lead for issue 12 on AMX: the fast net's 3x3 convolutions on small maps as one matrix product.

    python bench/conv_as_matmul.py

For three of the net's conv shapes (batch 500, bf16, channels_last) it times forward + backward of
F.conv2d (oneDNN), of F.unfold + matmul, and of "nhwc-cat": the 9 shifted views of the padded NHWC
input concatenated along channels and multiplied by the filters in one matmul. It prints ms per call,
GFLOP/s and the largest difference from an fp32 convolution. Interleaved rounds; medians.
The "nhwc-cat" path is the library's own fastnet.shifted_views_conv (FastNet(matmul_max_size=...), opt-in).
"""

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_utils.core import allocator  # noqa: E402
from cifar_utils.core.fastnet import shifted_views_conv  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402

allocator.retain_freed_memory()
B = 500


def conv_path(x, w):
    return F.conv2d(x, w, padding=1)


def gemm_path(x, w):
    b, c, h, wd = x.shape
    cols = F.unfold(x, 3, padding=1)  # b, c*9, h*w
    out = cols.transpose(1, 2).reshape(b * h * wd, c * 9) @ w.reshape(w.shape[0], -1).t()
    return out.reshape(b, h, wd, -1).permute(0, 3, 1, 2)


PATHS = (
    ("conv", conv_path),
    ("unfold", gemm_path),
    ("nhwc-cat", shifted_views_conv),
)  # the last: what the library uses

print(machine_line(provenance(torch.device("cpu")), "bf16"))
for hw, cin in ((7, 256), (3, 256), (15, 64)):
    cout = 256
    x0 = torch.randn(B, cin, hw, hw, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w0 = (torch.randn(cout, cin, 3, 3) * 0.02).to(torch.bfloat16)
    ref = conv_path(x0.float(), w0.float())
    flops = 2 * B * hw * hw * cin * cout * 9 * 3
    res = {}
    for rnd in range(3):
        for name, fn in PATHS:
            x = x0.clone().requires_grad_(True)
            w = w0.clone().requires_grad_(True)
            ts = []
            for _ in range(4):
                t = time.perf_counter()
                fn(x, w).sum().backward()
                ts.append(time.perf_counter() - t)
            res.setdefault(name, []).append(statistics.median(ts[1:]))
    for name, fn in PATHS:
        err = (fn(x0, w0).float() - ref).abs().max().item()
        t = statistics.median(res[name])
        print(
            f"{cin}->{cout} @{hw}: {name:9s} {t * 1000:7.1f} ms  {flops / t / 1e9:6.0f} GFLOP/s  max err vs fp32 {err:.3f}"
        )
