"""How long making every corrupted test set takes (cifar_utils/corruptions.py), one corruption at a time.

    CIFAR10_ROOT=/work/shared/cifar10 OMP_NUM_THREADS=1 python bench/corruption_speed.py --threads 1
    python bench/corruption_speed.py --images 2000      # random images without the dataset

Times `corrupt` on the test images (all five severities of each corruption, nothing read from or
written to the cache) and prints seconds per corruption and in all, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from cifar_utils.analysis import corruptions as C  # noqa: E402
from cifar_utils.core import data as D  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="test images corrupted (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/ (default $CIFAR10_ROOT)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = D.data_root(args.data_root)
    if (root / D.FOLDER).is_dir():
        images = D.load_cifar10(root, download=False, verify=False).test_images[: args.images]
    else:  # the time does not depend on the pixels
        images = torch.randint(
            0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        )
    print(machine_line(provenance(torch.device("cpu"))), f"| {len(images):,} images")
    total = 0.0
    for name in C.CORRUPTIONS:
        started = time.perf_counter()
        for severity in C.SEVERITIES:
            C.corrupt(images, name, severity)
        seconds = time.perf_counter() - started
        total += seconds
        print(f"{name:20s} {seconds:7.2f} s  (5 severities)")
    print(
        f"{'all':20s} {total:7.2f} s  ({len(C.CORRUPTIONS)} corruptions x 5 severities, {os.environ.get('OMP_NUM_THREADS', '?')} OMP threads)"
    )


if __name__ == "__main__":
    main()
