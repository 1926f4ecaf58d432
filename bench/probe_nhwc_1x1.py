"""Which 1x1 strided convolutions break oneDNN's channels_last backward pass on this CPU (oneDNN issue #6035).

    python bench/probe_nhwc_1x1.py                      # input channels 1-16, stride 2, this CPU's own ISA
    python bench/probe_nhwc_1x1.py --isa AVX2           # as an AVX2-only CPU would run it (ONEDNN_MAX_CPU_ISA)
    python bench/probe_nhwc_1x1.py --isa AVX2 --threads 1 2 --strides 1 2

oneDNN's 1x1 backward-weights kernels copy a strided NHWC source into a per-thread workspace sized
for the ISA's channel block (8 floats on AVX2, 16 on AVX-512); with fewer input channels than the
block they write past it. Depending on the thread count and the allocator that hangs, crashes
(segfault, "double free or corruption") or returns wrong weight gradients without a word.

Every case runs in a child process with a timeout, so a crash or a hang is a row of the table, not the
end of the probe. Each child computes the weight and input gradients of one convolution
(batch 32, 32x32 maps, 8 output channels unless --out-channels) in fp32, once in channels_last and
once contiguous, and compares both with a float64 reference (PyTorch's own kernels, not oneDNN).
The last column says whether cifar_utils keeps that convolution out of channels_last
(cifar_utils.core.channels_last.avoids_channels_last); any row that is not "ok" must say "yes" there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_utils.core.cpu import cpu_model, isa_class  # noqa: E402

# A relative error above this is a wrong gradient: fp32 against float64 on these sizes stays below 1e-5.
TOLERANCE = 1e-3

CHILD = r"""
import json, sys, torch
from torch.nn.functional import conv2d
ic, oc, stride, size = (int(v) for v in sys.argv[1:5])
torch.manual_seed(0)
x, w = torch.randn(32, ic, size, size), torch.randn(oc, ic, 1, 1)
def grads(layout, dtype):
    xx = x.to(dtype).clone(memory_format=layout).requires_grad_()  # a fresh leaf in exactly this layout
    ww = w.to(dtype).clone(memory_format=layout).requires_grad_()
    y = conv2d(xx, ww, stride=stride)
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=dtype).view_as(y))
    return ww.grad.double(), xx.grad.double()
ref_w, ref_x = grads(torch.contiguous_format, torch.float64)
def err(got, ref):
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
out = {}
for name, layout in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
    gw, gx = grads(layout, torch.float32)
    out[name] = max(err(gw, ref_w), err(gx, ref_x))
print(json.dumps(out))
"""


def run_case(ic: int, oc: int, stride: int, size: int, threads: int, isa: str | None, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(ic), str(oc), str(stride), str(size)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"hang (killed after {timeout:g} s)"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1][:60]
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return {"outcome": f"crash ({how}{': ' + last if last else ''})"}
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = errors["channels_last"] > TOLERANCE
    return {"outcome": f"wrong gradients (error {errors['channels_last']:.2g})" if wrong else "ok", **errors}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--isa",
        help="cap oneDNN's instruction set, e.g. AVX2 or AVX512_CORE (ONEDNN_MAX_CPU_ISA); "
        "default: whatever this CPU has",
    )
    p.add_argument("--channels", type=int, nargs="+", default=list(range(1, 17)), help="input channels (default 1-16)")
    p.add_argument("--out-channels", type=int, default=8)
    p.add_argument("--strides", type=int, nargs="+", default=[2])
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--size", type=int, default=32, help="input height and width")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a case counts as hung")
    args = p.parse_args(argv)

    from torch import nn

    from cifar_utils.core.channels_last import avoids_channels_last

    print(f"CPU: {cpu_model()} (ISA class {isa_class()}); oneDNN ISA cap: {args.isa or 'none (native)'}")
    print("| threads | stride | in channels | channels_last | contiguous error | cifar_utils avoids it |")
    print("|---|---|---|---|---|---|")
    bad_unavoided = 0
    for threads in args.threads:
        for stride in args.strides:
            for ic in args.channels:
                row = run_case(ic, args.out_channels, stride, args.size, threads, args.isa, args.timeout)
                avoided = avoids_channels_last(nn.Conv2d(ic, args.out_channels, 1, stride, bias=False))
                bad_unavoided += row["outcome"] != "ok" and not avoided
                contiguous = f"{row['contiguous']:.1g}" if "contiguous" in row else "n/a"
                print(
                    f"| {threads} | {stride} | {ic} | {row['outcome']} | {contiguous} | {'yes' if avoided else 'no'} |",
                    flush=True,
                )
    if bad_unavoided:
        print(
            f"{bad_unavoided} failing case(s) that cifar_utils does NOT avoid: widen its rule (cifar_utils/layout.py)"
        )
    return 1 if bad_unavoided else 0


if __name__ == "__main__":
    raise SystemExit(main())
