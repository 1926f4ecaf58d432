"""Keep freed memory in the process: glibc's default costs the CPU training step a third of its time.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh mmap and
hands it back to the kernel on free. A training step at batch 2000 allocates and frees gigabytes of
activations, so every step faults in and zeroes those pages again. Measured on an AMD EPYC (Zen 4),
2 threads, the fast net at batch 2000: 5.72 s per step by default, 3.75 s with mmap off and trimming
raised (bench/RESULTS.md). The price is a slightly higher resident peak (3.0 GB against 2.8 GB there).

CIFAR_MALLOC=system leaves the C library's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from ..errors import ConfigError
from ..paths import MALLOC_ENV

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 30  # return memory to the kernel only when a whole GiB lies free at the heap's top

_state = {"setting": None}


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has mallopt with these meanings (musl has none)
        return libc
    except (OSError, AttributeError):
        return None


def retain_freed_memory() -> str:
    """Switch glibc's malloc to reuse freed blocks; return what the process runs with.

    Idempotent and safe anywhere: on a non-glibc system, or with $CIFAR_MALLOC=system, it changes
    nothing and says so. The answer goes into a run's provenance.
    """
    if _state["setting"] is not None:
        return _state["setting"]
    wanted = os.environ.get(MALLOC_ENV, "retain").strip().lower()
    if wanted not in ("retain", "system"):
        raise ConfigError(
            f"${MALLOC_ENV} is {wanted!r}; set it to 'retain' (the default: freed memory is reused) or "
            f"'system' (the C library's defaults)"
        )
    libc = _libc() if wanted == "retain" else None
    if libc is not None and libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1:
        _state["setting"] = "glibc: mmap off, trim at 1 GiB"
    else:
        _state["setting"] = "system default"
    return _state["setting"]


def setting() -> str:
    """What retain_freed_memory() chose, or "system default" when it has not been called."""
    return _state["setting"] or "system default"
