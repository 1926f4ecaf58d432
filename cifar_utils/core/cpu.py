"""What this CPU can do: its model name, its instruction-set class, and whether bf16 is native.

The precision that `auto` picks depends on it (see `inference.resolve_precision`), and every
run and benchmark records it, because an absolute time means nothing without its CPU.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from ..paths import DNNL_ISA_ENV, ONEDNN_ISA_ENV, PRECISION_ENV

# From least to most capable for this project's purposes: bf16 is native only in the last two.
ISA_CLASSES = ("other", "avx2", "avx512", "avx512_bf16", "amx")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo does not exist)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def isa_class(flags: frozenset[str] | None = None) -> str:
    """ "amx", "avx512_bf16", "avx512", "avx2" or "other", from the flags (default: this CPU's, capped by
    $ONEDNN_MAX_CPU_ISA where that is set, since oneDNN then runs no instructions above it)."""
    found = _class_of(cpu_flags() if flags is None else flags)
    cap = onednn_isa_cap() if flags is None else None
    if cap is not None and ISA_CLASSES.index(cap) < ISA_CLASSES.index(found):
        return cap
    return found


def onednn_isa_cap() -> str | None:
    """The ISA class $ONEDNN_MAX_CPU_ISA (or its old name $DNNL_MAX_CPU_ISA) caps oneDNN at; None when unset.

    `ONEDNN_MAX_CPU_ISA=AVX2` makes an AVX-512 machine run the kernels of an AVX2-only CPU (the tests and
    benchmarks use it to reproduce AVX2-only behaviour anywhere); bf16 is then emulated, so "auto" picks fp32.
    """
    value = (os.environ.get(ONEDNN_ISA_ENV) or os.environ.get(DNNL_ISA_ENV) or "").strip().upper()
    if not value or value in ("ALL", "DEFAULT"):
        return None
    if "AMX" in value:
        return "amx"
    if value.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10")):
        return "avx512_bf16"
    if value.startswith("AVX512"):
        return "avx512"
    if value.startswith("AVX2"):
        return "avx2"
    return "other"


def _class_of(flags: frozenset[str]) -> str:
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "other"


def has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU has bf16 instructions (AVX-512 BF16 or AMX).

    Not oneDNN's own test: that one accepts any AVX-512 CPU (Skylake to Ice Lake too), where bf16
    is emulated and slower than fp32.
    """
    return isa_class(flags) in ("avx512_bf16", "amx")


def forced_precision() -> str | None:
    """$CIFAR_PRECISION when set (how tests run the whole suite at one precision), else None."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    return value or None
