"""Time to accuracy, side by side: a recipe over several seeds, the machine's ceiling, and the yardsticks.

    CIFAR10_ROOT=/work/shared/cifar10 python bench/time_to_accuracy.py --recipe fast --seeds 0 1 2 --anchor
    python bench/time_to_accuracy.py --short --seeds 0 --reference     # the short configuration vs a plain loop
    python bench/time_to_accuracy.py --epochs 1 --train-subset 10000 --seeds 0   # a quick check

By default the model trains on all 50,000 training images (--val-size 0, as the published
time-to-94% runs do) and is scored once on the 10,000 test images, with and without the recipe's
test-time augmentation; the test set plays no part in any choice.

One row for the recipe: n, mean ± std test accuracy (with and without TTA), median wall seconds,
img/s, achieved GFLOP/s, and the machine's ceiling measured in the same run (a 3x3 convolution's
forward and backward at the precision used) with the share of it the training achieved.
--anchor also runs ../shared/anchors/airbench94_muon_cpu.py (its own timer: training + TTA) and
prints our median wall time over its time; --reference runs bench/reference_seed.py (a plain
PyTorch loop of the seed recipe) to the seed project's 78.46% and prints the ratio of the times.
Everything runs in this one invocation, one job after another, on the same machine.

Wall seconds time the whole `fit` call: model building and the whitening fit, training, and the
final evaluation with TTA. Excluded: Python and torch imports and reading the dataset files.
GFLOP/s counts multiply-adds of the forward pass (models.count_macs) x 2 FLOPs x 3 for forward
plus backward, over the training images and training seconds only.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from cifar_utils.core import (
    allocator,
    cpu,  # noqa: E402
)
from cifar_utils.core.config import RECIPES, recipe_config  # noqa: E402
from cifar_utils.core.data import load_cifar10  # noqa: E402
from cifar_utils.core.evaluation import PRECISION_DTYPES, precision_name, resolve_device  # noqa: E402
from cifar_utils.core.models import build_model, count_macs  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402
from cifar_utils.runs.training import fit  # noqa: E402

SEED_PROJECT_ACCURACY = 0.7846
ANCHOR = REPO.parent / "shared" / "anchors" / "airbench94_muon_cpu.py"
# The short configuration aimed at the seed's 78.46%: the fast recipe at a quarter of its widths, one epoch in
# batches of 500, chosen on a validation split by bench/short_candidates.py (81.94% validation; bench/RESULTS.md).
SHORT = {"epochs": 1, "widths": [32, 64, 64], "batch_size": 500}


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be three whole numbers like 64,256,256, got {text!r}") from None
    if len(widths) != 3 or min(widths) <= 0:
        raise argparse.ArgumentTypeError(f"widths must be three positive whole numbers, got {text!r}")
    return widths


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="fast", choices=sorted(RECIPES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, help="default: the recipe's (or SHORT's with --short)")
    p.add_argument("--widths", type=_widths, help="the fast net's three block widths, e.g. 32,64,64")
    p.add_argument(
        "--matmul-max-size",
        type=int,
        default=None,
        metavar="N",
        help="the fast net's convolutions on maps of at most NxN as one matrix product "
        "(fastnet.shifted_views_conv; default: the recipe's, oneDNN everywhere)",
    )
    p.add_argument("--short", action="store_true", help=f"the short configuration {SHORT}, aimed at 78.46%%")
    p.add_argument("--val-size", type=int, default=0, help="validation images held out (default 0: train on all 50k)")
    p.add_argument("--train-subset", type=int, help="train on only this many images (quick checks)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--data-root")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the md5 check (synthetic data)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--progress", action="store_true", help="show per-epoch progress bars")
    p.add_argument("--anchor", action="store_true", help=f"also run the airbench94_muon CPU port ({ANCHOR})")
    p.add_argument("--anchor-path", type=Path, default=ANCHOR)
    p.add_argument("--reference", action="store_true", help="also run bench/reference_seed.py to 78.46%%")
    return p.parse_args(argv)


def config_for(args: argparse.Namespace, seed: int):
    overrides = {
        "seed": seed,
        "val_size": args.val_size,
        "train_subset": args.train_subset,
        "device": args.device,
        "batch_size": args.batch_size or (SHORT["batch_size"] if args.short else None),
        "precision": args.precision,
        "epochs": args.epochs or (SHORT["epochs"] if args.short else None),
    }
    config = recipe_config(args.recipe, **overrides)
    widths = args.widths or (SHORT.get("widths") if args.short else None)
    if widths is not None:
        config.model_kwargs = {**config.model_kwargs, "widths": list(widths)}
        if "head_scale" in config.model_kwargs:  # fast: the head is scaled by 1/width, as in experiments.py
            config.model_kwargs["head_scale"] = 1 / widths[-1]
    if args.matmul_max_size is not None:
        config.model_kwargs = {**config.model_kwargs, "matmul_max_size": args.matmul_max_size}
    return config.validate()


def run_seed(config, dataset, progress: bool = False) -> dict:
    start = time.perf_counter()
    result = fit(config, dataset=dataset, progress=progress, log=print if progress else (lambda *_: None))
    wall = time.perf_counter() - start
    m = result.metrics
    macs = count_macs(build_model(config.model, **config.model_kwargs))
    flops = macs * 2 * 3 * m["train_images"] * config.epochs
    return {
        "seed": config.seed,
        "test_tta": m["test_accuracy"],
        "test_plain": m.get("test_accuracy_no_tta"),
        "wall": wall,
        "train_seconds": m["train_seconds"],
        "eval_seconds": m.get("eval_seconds"),
        "images_per_second": m["images_per_second"],
        "gflops_per_second": flops / m["train_seconds"] / 1e9,
        "macs": macs,
        "train_images": m["train_images"],
        "precision": result.config.precision,
    }


def conv_ceiling(precision: str, device: torch.device, repeats: int = 7) -> float:
    """GFLOP/s of a 3x3 convolution 64 -> 256 channels on 32x32 maps, forward + backward, channels_last,
    at `precision`: the kind of work the fast net is made of, at a size that keeps the cores busy."""
    dtype = PRECISION_DTYPES[precision] or torch.float32
    x = torch.randn(128, 64, 32, 32, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    conv = torch.nn.Conv2d(64, 256, 3, padding=1, bias=False).to(
        device=device, dtype=dtype, memory_format=torch.channels_last
    )
    flops = 2 * 3 * 128 * 32 * 32 * 256 * 64 * 9
    times = []
    for _ in range(repeats + 1):  # the first call builds oneDNN's kernels
        start = time.perf_counter()
        conv(x).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times[1:]) / 1e9


def run_anchor(path: Path, data_root: str | None) -> dict:
    """One run of the anchor; its TTA accuracy and its own timer (training + TTA, no per-epoch evaluation)."""
    if not path.is_file():
        raise SystemExit(f"error: the anchor {path} is not there; pass --anchor-path")
    env = {**os.environ, "CIFAR10_ROOT": str(data_root or os.environ.get("CIFAR10_ROOT", "data"))}
    if not cpu.has_native_bf16():
        env["AB_DTYPE"] = "fp32"  # emulated bf16 is ~10x slower and would flatter us
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(path), "1"], capture_output=True, text=True, env=env, check=True).stdout
    eval_row = next(line for line in out.splitlines() if re.search(r"\|\s+eval\s+\|", line))
    numbers = re.findall(r"\d+\.\d+", eval_row)
    return {
        "tta": float(numbers[-2]),
        "seconds": float(numbers[-1]),
        "wall": time.perf_counter() - start,
        "dtype": env.get("AB_DTYPE", "bf16"),
    }


def run_reference(data_root: str | None) -> dict:
    """bench/reference_seed.py to the seed's accuracy: seconds and epoch at which it got there."""
    cmd = [sys.executable, str(REPO / "bench" / "reference_seed.py"), "--stop-at-target"]
    cmd += ["--data-root", data_root] if data_root else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("REFERENCE "))
    fields = dict(item.split("=") for item in line.split()[1:])
    return {
        "reached": fields["reached"] != "none",
        "seconds": float(fields["seconds"]),
        "epoch": fields.get("epoch"),
        "accuracy": fields["reached"],
    }


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}%"


def main(argv=None) -> int:
    args = parse_args(argv)
    allocator.retain_freed_memory()  # what fit() does; set before the ceiling is measured, too
    device = resolve_device(args.device)
    dataset = load_cifar10(args.data_root, download=False, verify=args.verify)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # pay torch's one-time optimizer imports here
    rows, ceilings = [], []
    for seed in args.seeds:
        config = config_for(args, seed)
        # The ceiling before every seed and after the last: on a shared VM it moved 2x within minutes (AMX Xeon,
        # bench/RESULTS.md), so one reading could put the share anywhere; the median of the readings is used.
        ceilings.append(conv_ceiling(precision_name(config.precision, device), device))
        row = run_seed(config, dataset, args.progress)
        rows.append(row)
        plain = f"{100 * row['test_plain']:.2f}%" if row["test_plain"] is not None else "n/a"
        print(
            f"seed {seed}: test {100 * row['test_tta']:.2f}% ({config.tta} TTA), {plain} without; "
            f"wall {row['wall']:.1f} s (train {row['train_seconds']:.1f} s, eval {row['eval_seconds']:.1f} s); "
            f"{row['images_per_second']:.1f} img/s; {row['gflops_per_second']:.1f} GFLOP/s",
            flush=True,
        )
    precision = rows[0]["precision"]
    ceilings.append(conv_ceiling(precision, device))
    ceiling = statistics.median(ceilings)
    achieved = statistics.median(r["gflops_per_second"] for r in rows)
    wall = statistics.median(r["wall"] for r in rows)

    widths = config.model_kwargs.get("widths", "default")
    label = (
        f"{args.recipe}{' (short)' if args.short else ''}: {config.model} widths={widths}, "
        f"epochs={config.epochs}, batch={config.batch_size}"
        + (f", matmul on maps <= {args.matmul_max_size}" if args.matmul_max_size else "")
    )
    header = (
        "recipe",
        "n",
        "test acc (TTA)",
        "test acc (no TTA)",
        "median wall s",
        "img/s",
        "GFLOP/s",
        "ceiling GFLOP/s",
        "share of ceiling",
    )
    cells = (
        label,
        str(len(rows)),
        _mean_std([r["test_tta"] for r in rows]),
        _mean_std([r["test_plain"] for r in rows]),
        f"{wall:.1f}",
        f"{statistics.median(r['images_per_second'] for r in rows):.1f}",
        f"{achieved:.1f}",
        f"{ceiling:.1f}",
        f"{achieved / ceiling:.2f}",
    )
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("| " + " | ".join(cells) + " |")
    print(
        f"\ntrain images {rows[0]['train_images']}, {rows[0]['macs'] / 1e6:.1f}M multiply-adds per image forward; "
        f"wall = fit(): model + whitening init + training + final evaluation with TTA "
        f"(excluded: imports, reading the dataset files); ceiling: 3x3 conv 64->256 on 32x32, fwd+bwd, {precision}, "
        f"median of {len(ceilings)} readings before each seed and after the last: "
        f"{', '.join(f'{c:.1f}' for c in ceilings)} GFLOP/s"
    )
    if args.short:
        mean = statistics.mean(r["test_tta"] for r in rows)
        print(
            f"short configuration vs the seed's {100 * SEED_PROJECT_ACCURACY:.2f}%: "
            f"{'reached' if mean >= SEED_PROJECT_ACCURACY else 'NOT reached'}"
        )
    if args.anchor:
        anchor = run_anchor(args.anchor_path, args.data_root)
        print(
            f"anchor airbench94_muon ({anchor['dtype']}): TTA test {100 * anchor['tta']:.2f}% in {anchor['seconds']:.1f} s "
            f"(its timer; {anchor['wall']:.1f} s wall with its per-epoch evaluation); "
            f"time ratio ours/anchor = {wall / anchor['seconds']:.3f}"
        )
    if args.reference:
        ref = run_reference(args.data_root)
        if ref["reached"]:
            print(
                f"reference_seed.py reached {100 * float(ref['accuracy']):.2f}% at epoch {ref['epoch']} in "
                f"{ref['seconds']:.1f} s; time ratio ours/reference = {wall / ref['seconds']:.3f}"
            )
        else:
            print(f"reference_seed.py did not reach {100 * SEED_PROJECT_ACCURACY:.2f}% in {ref['seconds']:.1f} s")
    print(machine_line(provenance(device), precision_name(config.precision, device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
