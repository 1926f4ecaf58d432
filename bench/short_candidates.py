"""Choose the short configuration on the validation split, never on the test set.

    CIFAR10_ROOT=/work/shared/cifar10 python bench/short_candidates.py --candidates 32,64,64:1 32,64,64:2 64,128,128:1

Each candidate is WIDTHS:EPOCHS (the fast recipe at those widths and epochs; the head is scaled by
1/width as in notebooks 04 and 05). Each trains on 45,000 images and is scored on the 5,000 held out,
with the recipe's TTA; no test image is read. One row per candidate: validation accuracy, wall
seconds (the whole `fit` call, as bench/time_to_accuracy.py times it). The short configuration is
the fastest candidate whose validation accuracy clears the seed's 78.46% by `--margin`; its test
accuracy is then measured once by time_to_accuracy.py --short.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_utils.core.config import recipe_config  # noqa: E402
from cifar_utils.core.data import load_cifar10  # noqa: E402
from cifar_utils.paths import data_root  # noqa: E402
from cifar_utils.runs.provenance import machine_line  # noqa: E402
from cifar_utils.runs.training import fit  # noqa: E402

SEED_PROJECT_ACCURACY = 0.7846


def candidate(text: str) -> tuple[list[int], int]:
    try:
        widths, epochs = text.split(":")
        parsed = [int(w) for w in widths.split(",")], int(epochs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a candidate is WIDTHS:EPOCHS like 32,64,64:2, got {text!r}") from None
    if len(parsed[0]) != 3 or min(parsed[0]) < 1 or parsed[1] < 1:
        raise argparse.ArgumentTypeError(f"three positive widths and at least one epoch, got {text!r}")
    return parsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=candidate, nargs="+", required=True)
    p.add_argument("--batch-size", type=int, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=float, default=0.01, help="validation accuracy needed above 78.46%% (a fraction)")
    p.add_argument("--data-root")
    args = p.parse_args(argv)
    dataset = load_cifar10(data_root(args.data_root), download=False)
    rows = []
    for widths, epochs in args.candidates:
        config = recipe_config(
            "fast",
            epochs=epochs,
            val_size=5000,
            seed=args.seed,
            batch_size=args.batch_size,
            model_kwargs={"widths": widths, "head_scale": 1 / widths[-1]},
        )
        start = time.perf_counter()
        result = fit(config, dataset=dataset, evaluate_test=False, progress=False, log=lambda *_: None)
        wall = time.perf_counter() - start
        rows.append((widths, epochs, config.batch_size, result.metrics["val_accuracy"], wall))
        print(
            f"widths {','.join(map(str, widths))}, {epochs} epoch(s), batch {config.batch_size}: validation "
            f"{100 * result.metrics['val_accuracy']:.2f}% in {wall:.1f} s",
            flush=True,
        )
    passing = [r for r in rows if r[3] >= SEED_PROJECT_ACCURACY + args.margin]
    if passing:
        w, e, b, acc, wall = min(passing, key=lambda r: r[4])
        print(f"CHOSEN widths={','.join(map(str, w))} epochs={e} batch={b} validation={acc:.4f} seconds={wall:.1f}")
    else:
        print(f"none cleared {100 * (SEED_PROJECT_ACCURACY + args.margin):.2f}% on validation")
    print(machine_line(result.metrics["provenance"], result.config.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
