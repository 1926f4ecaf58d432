"""How much of the test-time augmentation's gain comes from the least confident images: measured on
a run's VALIDATION split (never the test set), to choose the recipe's tta_share.

    CIFAR10_ROOT=/work/shared/cifar10 python -m cifar_utils train --recipe fast --val-size 5000 --out runs/val5k
    CIFAR10_ROOT=/work/shared/cifar10 python bench/tta_share.py runs/val5k

Prints, for each share, the validation accuracy when only that share of the images (least confident
plain prediction first) gets the views, the images that changed prediction, and the evaluation's
seconds; then the smallest share within --tolerance points of the full augmentation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from cifar_utils.core import allocator  # noqa: E402
from cifar_utils.core.data import load_cifar10, split_dataset  # noqa: E402
from cifar_utils.core.evaluation import least_confident, predict_logits, resolve_device, resolve_precision  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402
from cifar_utils.runs.run_files import load_run  # noqa: E402

SHARES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a finished run trained with a validation split")
    p.add_argument("--data-root")
    p.add_argument("--tolerance", type=float, default=0.05, help="points of validation accuracy the share may lose")
    args = p.parse_args(argv)
    allocator.retain_freed_memory()
    device = resolve_device("auto")
    run = load_run(args.run_dir, device)
    config = run.config
    if config.val_size == 0:
        raise SystemExit(
            f"error: {args.run_dir} was trained without a validation split; train one with --val-size 5000"
        )
    split = split_dataset(load_cifar10(args.data_root, download=False), config.val_size, config.train_subset)
    images, labels = split.val_images, split.val_labels
    precision = resolve_precision(config.precision, device)
    kwargs = dict(batch_size=config.eval_batch_size, device=device, precision=precision, tta=config.tta)
    start = time.perf_counter()
    full, plain = predict_logits(run.model, images, with_plain=True, **kwargs)
    full_seconds = time.perf_counter() - start
    accuracy = lambda logits: (logits.argmax(1) == labels).float().mean().item()  # noqa: E731
    print(f"run {args.run_dir} ({config.model}, {config.tta} TTA), {len(labels)} validation images")
    print(f"plain {100 * accuracy(plain):.2f}%, full TTA {100 * accuracy(full):.2f}% in {full_seconds:.1f} s\n")
    print("| share | validation accuracy | predictions changed by the views | evaluation s |\n|---|---|---|---|")
    chosen = None
    for share in SHARES:
        start = time.perf_counter()
        logits = predict_logits(run.model, images, tta_share=share, **kwargs)
        seconds = time.perf_counter() - start
        changed = (logits.argmax(1) != plain.argmax(1)).sum().item()
        acc = accuracy(logits)
        print(f"| {share:.2f} | {100 * acc:.2f}% | {changed} | {seconds:.1f} |")
        if chosen is None and acc >= accuracy(full) - args.tolerance / 100:
            chosen = share
    uncertain = least_confident(plain, chosen or 1.0)
    print(
        f"\nsmallest share within {args.tolerance} points of full TTA on validation: {chosen} "
        f"(confidence below {plain.softmax(1).amax(1)[uncertain].max():.3f})"
    )
    print(machine_line(provenance(device), config.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
