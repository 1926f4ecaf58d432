"""The allocator setting: freed activations stay in the process unless the user says otherwise."""

import subprocess
import sys

import pytest

PROBE = """
import os, sys, torch
from cifar_utils.core import allocator
print(allocator.retain_freed_memory())
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
before = rss()
x = torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's largest mmap threshold
del x
print(rss() - before)
"""


def _probe(env_value):
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["CIFAR_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=".", timeout=120)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_stays_in_the_process_by_default_and_goes_back_with_system():
    retained = _probe(None)
    assert retained.returncode == 0, retained.stderr
    setting, kept = retained.stdout.split("\n")[:2]
    assert setting == "glibc: mmap off, trim at 1 GiB"
    assert int(kept) > 60 * 2**20  # the 64 MiB block was kept for the next step's activations

    system = _probe("system")
    setting, kept = system.stdout.split("\n")[:2]
    assert setting == "system default"
    assert int(kept) < 32 * 2**20  # glibc unmapped it on free (what stays is torch's own first-use memory, ~8 MiB)


def test_a_wrong_allocator_setting_is_refused_with_the_choices():
    out = _probe("jemalloc")
    assert out.returncode != 0 and "CIFAR_MALLOC is 'jemalloc'" in out.stderr and "'system'" in out.stderr
