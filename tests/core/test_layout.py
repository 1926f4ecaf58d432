"""channels_last must not change what a model learns: its gradients equal those of the contiguous layout.

oneDNN's channels_last backward of small 1x1 strided convolutions hangs, crashes or returns wrong
weight gradients on some CPUs (cifar_utils/layout.py). Each comparison runs in a child process with
a timeout, so a hang or a crash fails one test instead of taking the suite down, and each runs twice:
with this CPU's own instruction set and, where the CPU has AVX2, with oneDNN capped at AVX2
(ONEDNN_MAX_CPU_ISA), which dispatches the kernels an AVX2-only CPU runs, on any x86 machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from cifar_utils.core import cpu
from cifar_utils.core.channels_last import GUARD_ENV, avoids_channels_last, guard_enabled
from cifar_utils.core.models import available_models, build_model, smoke_kwargs

ROOT = Path(__file__).resolve().parents[2]
ISAS = ["native"] + (["AVX2"] if "avx2" in cpu.cpu_flags() else [])
TIMEOUT_S = 60  # a passing comparison takes seconds

# Builds the model twice from one seed, contiguous and channels_last, gives both the same weights and the same
# batch, and prints the largest gradient difference of each parameter relative to that parameter's largest gradient.
CHILD = r"""
import json, sys, torch
from torch import nn
from cifar_utils.core.models import build_model
name, kwargs = sys.argv[1], json.loads(sys.argv[2])
torch.manual_seed(0)
images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
labels = torch.randint(0, 10, (16,))
def gradients(channels_last, state=None):
    torch.manual_seed(0)
    model = build_model(name, mean=(120.0, 120.0, 110.0), std=(60.0, 60.0, 65.0), channels_last=channels_last, **kwargs)
    if state is not None:
        model.load_state_dict(state)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):  # its mask follows memory order, which differs between the layouts
            m.eval()
    nn.functional.cross_entropy(model(images), labels).backward()
    return model.state_dict(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
state, contiguous = gradients(False)
_, channels_last = gradients(True, state)
print(json.dumps({n: float((channels_last[n] - g).abs().max() / g.abs().max().clamp_min(1e-12))
                  for n, g in contiguous.items()}))
"""


# The defect's wrong gradients are off by whole multiples. Legitimate fp32 differences stay far below this, though
# not always below 1e-3: where a batch norm's input gradient is nearly constant (behind the final average pool of a
# freshly initialised full-width ResNet) its backward cancels, and two summation orders differ by percents.
TOLERANCE = 1e-2


def _sizes():
    """Every registered model at its smoke size (its registration's: the sizes CI and smoke reports train)."""
    for name in available_models():
        yield pytest.param(name, smoke_kwargs(name), id=f"{name}-smoke")


def _run(name: str, kwargs: dict, isa: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "OMP_NUM_THREADS": "2",
        **(env_extra or {}),
    }
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    try:
        return subprocess.run(
            [sys.executable, "-c", CHILD, name, json.dumps(kwargs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} {kwargs} hung in channels_last (no result in {TIMEOUT_S} s, oneDNN ISA {isa})")


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name,kwargs", list(_sizes()))
def test_channels_last_gradients_equal_contiguous(name, kwargs, isa):
    done = _run(name, kwargs, isa)
    assert done.returncode == 0, (
        f"{name} {kwargs} crashed in channels_last (exit {done.returncode}, oneDNN ISA {isa}):\n{done.stderr[-2000:]}"
    )
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert errors, "no gradients were compared"
    wrong = {n: e for n, e in errors.items() if not e <= TOLERANCE}
    assert not wrong, (
        f"{name} {kwargs}: channels_last gradients differ from contiguous ones (oneDNN ISA {isa}): {wrong}"
    )


def test_the_rule_names_only_small_strided_one_by_one_convolutions():
    assert avoids_channels_last(nn.Conv2d(4, 8, 1, stride=2, bias=False))
    assert avoids_channels_last(nn.Conv2d(15, 32, 1, stride=(2, 1)))
    assert not avoids_channels_last(nn.Conv2d(16, 32, 1, stride=2))  # at the block: correct kernels
    assert not avoids_channels_last(nn.Conv2d(4, 8, 1, stride=1))  # no strided copy into the workspace
    assert not avoids_channels_last(nn.Conv2d(4, 8, 3, stride=2))
    assert not avoids_channels_last(nn.Linear(4, 8))


def test_avoided_convolutions_run_contiguous_inside_a_channels_last_model():
    import torch

    model = build_model("resnet18", channels_last=True, width=4)
    seen = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, inp[0]))
    out = model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (2, 10)
    avoided = {n for n, m in model.named_modules() if avoids_channels_last(m)}
    assert len(avoided) == 2  # the strided shortcuts at 4 and 8 input channels (the third has 16)
    for name, x in seen.items():
        if name in avoided:
            assert x.is_contiguous() and model.get_submodule(name).weight.is_contiguous(), name
        else:
            assert x.is_contiguous(memory_format=torch.channels_last), name
    assert guard_enabled()


def test_the_guard_can_be_switched_off_for_diagnosis(monkeypatch):
    import torch

    monkeypatch.setenv(GUARD_ENV, "off")
    model = build_model("resnet18", channels_last=True, width=4)
    shortcut = next(m for m in model.modules() if avoids_channels_last(m))
    assert shortcut.weight.is_contiguous(memory_format=torch.channels_last) and not shortcut._forward_pre_hooks
