"""Size notebook 07's matched time budgets on this machine: how many epochs of each architecture end within each
budget.

Each architecture trains 2 epochs on a 25,000-image subset (its own recipe, bf16/fp32 as "auto" picks). The second
epoch's seconds, scaled to 45,000 images, give the steady cost of an epoch; the first epoch's excess over the second
is the one-off start-up (whitening, allocation). A budget of B seconds then fits the largest E with
start-up + E x epoch <= FILL x B; FILL leaves room for the machine's run-to-run noise. Prints one table; nothing is
written.

    CIFAR10_ROOT=/work/shared/cifar10 python bench/size_budgets.py --budgets 30 60 120
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import pandas as pd

from cifar_utils.analysis import architecture_comparison as A
from cifar_utils.core import cpu
from cifar_utils.core.data import data_root, load_cifar10
from cifar_utils.runs.training import fit

SUBSET = 25000  # keeps the full 5,000 validation images (a fifth of the subset), as the real runs have
FULL_TRAIN = 45000
FILL = 0.85


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(A.BUDGETS))
    parser.add_argument("--subset", type=int, default=SUBSET, help="training images of the timed epochs")
    args = parser.parse_args()
    data = load_cifar10(data_root(None), download=False, verify=False)
    plan = A.plan()
    rows = []
    for name in A.ARCHITECTURES:
        config = dataclasses.replace(A.run_config(plan, name, 2, 0), train_subset=args.subset)
        record = fit(config, dataset=data, evaluate_test=False, progress=False, log=lambda *_: None)
        first, second = (float(row["seconds"]) for row in record.history[:2])
        epoch = second * FULL_TRAIN / args.subset
        startup = max(0.0, first - second)
        row = {"architecture": name, "start-up s": round(startup, 1), "epoch s (45k images)": round(epoch, 1)}
        for b in args.budgets:
            row[f"epochs in {b:g} s"] = max(0, math.floor((FILL * b - startup) / epoch))
        rows.append(row)
    print(f"CPU: {cpu.cpu_model()}, ISA class {cpu.isa_class()}, precision {record.config.precision}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
