"""Reproduce the seed project's recipe over several seeds and print its accuracy and wall time.

    CIFAR10_ROOT=../shared/cifar10 python bench/seed_baseline.py --seeds 0 1 2

Each seed is a full `fit` of the seed recipe (10 epochs of Adam at 1e-3 on the 45,000/5,000
split) followed by one evaluation on the test set. Wall time counts training and evaluation,
not loading the files. The seed project reported 78.46% validation accuracy at epoch 10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_utils.core.config import recipe_config  # noqa: E402
from cifar_utils.core.data import load_cifar10  # noqa: E402
from cifar_utils.core.evaluation import resolve_device  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402
from cifar_utils.runs.training import fit  # noqa: E402

SEED_PROJECT_VAL_ACC = 0.7846


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--data-root")
    parser.add_argument("--out", type=Path, help="also save each run under OUT/seed<N>")
    args = parser.parse_args()

    dataset = load_cifar10(args.data_root, download=False)
    rows = []
    for seed in args.seeds:
        config = recipe_config("seed", seed=seed, epochs=args.epochs)
        run_dir = args.out / f"seed{seed}" if args.out else None
        result = fit(config, dataset=dataset, run_dir=run_dir, overwrite=True, progress=False, log=lambda *_: None)
        m = result.metrics
        rows.append((seed, m["val_accuracy"], m["test_accuracy"], m["seconds"], m["images_per_second"]))
        print(
            f"seed {seed}: val {100 * m['val_accuracy']:.2f}%  test {100 * m['test_accuracy']:.2f}%  "
            f"{m['seconds']:.0f} s  {m['images_per_second']:.0f} img/s",
            flush=True,
        )

    val = [r[1] for r in rows]
    test = [r[2] for r in rows]
    secs = [r[3] for r in rows]
    sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
    prov = provenance(resolve_device("auto"))
    print()
    print(
        f"seed recipe, n={len(rows)}: validation {100 * statistics.mean(val):.2f} ± {100 * sd(val):.2f}%  "
        f"test {100 * statistics.mean(test):.2f} ± {100 * sd(test):.2f}%  median wall {statistics.median(secs):.0f} s "
        f"(training + evaluation, file loading excluded)"
    )
    print(
        f"seed project's epoch-10 validation accuracy: {100 * SEED_PROJECT_VAL_ACC:.2f}% -> "
        f"{'reached' if statistics.mean(val) >= SEED_PROJECT_VAL_ACC else 'NOT reached'}"
    )
    print(machine_line(prov, result.config.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
