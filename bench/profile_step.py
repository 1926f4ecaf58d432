"""Where a training step's time goes, and three quick what-ifs (memory layout, torch.compile, convs as matmul).

    CIFAR10_ROOT=/work/shared/cifar10 python bench/profile_step.py                  # profile 3 steps
    python bench/profile_step.py --mode layout --steps 5    # channels_last vs NCHW, side by side
    python bench/profile_step.py --mode compile --steps 20  # torch.compile vs eager, compile time included
    python bench/profile_step.py --mode matmul --steps 6 --batch-size 2000   # small maps' convs as one matmul

`profile` runs the recipe's real pieces (its augmentation, model, loss, optimizer, weight
averaging, TTA evaluation) under torch.profiler for a few steps and prints the time per phase and
per operator type (self CPU time, so nothing is counted twice). Without --data-root or
$CIFAR10_ROOT it uses random images: the timing does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

from cifar_utils.core import allocator  # noqa: E402
from cifar_utils.core import data as D  # noqa: E402
from cifar_utils.core.augment import AUGMENTATIONS  # noqa: E402
from cifar_utils.core.config import RECIPES, recipe_config  # noqa: E402
from cifar_utils.core.evaluation import predict_logits, resolve_device, resolve_precision  # noqa: E402
from cifar_utils.core.models import count_macs  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402
from cifar_utils.runs.training import init_state, train_step  # noqa: E402

# Operator name fragments -> category; the first match wins.
CATEGORIES = (
    ("convolution", ("conv",)),
    ("batchnorm", ("batch_norm",)),
    ("activation", ("gelu", "relu")),
    ("pooling", ("max_pool", "amax", "avg_pool", "max_unpool")),
    ("linear", ("addmm", "::mm", "linear", "matmul")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("optimizer math", ("_foreach", "lerp", "sgd")),
    (
        "copies/layout",
        (
            "copy_",
            "contiguous",
            "clone",
            "to_dense",
            "reorder",
            "empty",
            "cat",
            "index",
            "flip",
            "reflection_pad",
            "where",
            "pad",
        ),
    ),
)
PHASES = ("augment", "forward", "backward", "optimizer", "evaluate")


def category(op_name: str) -> str:
    name = op_name.lower()
    for label, fragments in CATEGORIES:
        if any(f in name for f in fragments):
            return label
    return "other"


def load_split(args) -> tuple[D.Split, torch.Tensor]:
    try:
        ds = D.load_cifar10(args.data_root, download=False, verify=False)
        images, labels, test = ds.train_images, ds.train_labels, ds.test_images
        source = f"CIFAR-10 from {ds.root}"
    except Exception:  # no dataset here: random pixels time the same
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (4 * args.batch_size, 3, 32, 32), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, 10, (len(images),), generator=gen)
        test = images[: args.eval_images]
        source = "random images (no dataset found)"
    print(f"data: {source}")
    empty = images[:0]
    return D.Split(images, labels, empty, labels[:0]), test[: args.eval_images]


def make_config(args, **extra):
    config = recipe_config(
        args.recipe, batch_size=args.batch_size, device=args.device, precision=args.precision, val_size=0, **extra
    )
    if args.widths:
        config.model_kwargs = {**config.model_kwargs, "widths": [int(w) for w in args.widths.split(",")]}
    return config.validate()


def training_steps(config, state, split, device, precision, steps: int, start_step: int = 0, total_steps: int = 1000):
    """`steps` of the training loop's own step (training.train_step) on random batches of the recipe's
    augmentation, each phase under its own profiler label."""
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    gen = state.generator
    for i in range(steps):
        with record_function("augment"):
            idx = torch.randint(0, len(split.train_images), (config.batch_size,), generator=gen)
            x, y = split.train_images[idx].to(device), split.train_labels[idx].to(device)
            x, batch_augment = AUGMENTATIONS[config.augment].for_epoch(x, config.seed, 1 + i)
            x = batch_augment(x, gen) if batch_augment is not None else x
        loss, _ = train_step(
            config, state, criterion, x, y, device, precision, start_step + i, total_steps, phase=record_function
        )
    return loss.item()


def mode_profile(args, split, test, device) -> None:
    config = make_config(args)
    precision = resolve_precision(config.precision, device)
    state = init_state(config, split, device)
    training_steps(config, state, split, device, precision, 1)  # warm-up: oneDNN primitive creation
    phase_wall = defaultdict(float)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        training_steps(config, state, split, device, precision, args.steps, start_step=1)
        phase_wall["train steps"] = time.perf_counter() - start
        start = time.perf_counter()
        with record_function("evaluate"):
            predict_logits(
                state.model, test, batch_size=config.eval_batch_size, device=device, precision=precision, tta=config.tta
            )
        phase_wall["evaluate"] = time.perf_counter() - start
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1e6 for e in events if e.key in PHASES}
    by_type: dict[str, float] = defaultdict(float)
    for e in events:
        if e.key not in PHASES and not e.key.startswith("ProfilerStep"):
            by_type[category(e.key)] += e.self_cpu_time_total / 1e6
    total = sum(by_type.values())
    macs = count_macs(state.model)
    train_s = phase_wall["train steps"]
    print(
        f"\n{args.steps} training steps of batch {config.batch_size} ({config.model}, {macs / 1e6:.1f}M MACs/image, "
        f"{'fp32' if precision is None else precision}, channels_last={config.channels_last}): {train_s:.2f} s, "
        f"{args.steps * config.batch_size / train_s:.1f} img/s, "
        f"{macs * 6 * args.steps * config.batch_size / train_s / 1e9:.1f} GFLOP/s; "
        f"evaluation of {len(test)} images with {config.tta} TTA: {phase_wall['evaluate']:.2f} s"
    )
    print("\n| phase | seconds | share of step time |\n|---|---|---|")
    step_total = sum(phases.get(p, 0.0) for p in PHASES[:4])
    for p in PHASES:
        share = f"{100 * phases.get(p, 0.0) / step_total:.1f}%" if p != "evaluate" and step_total else "-"
        print(f"| {p} | {phases.get(p, 0.0):.2f} | {share} |")
    print("\n| operator type (self CPU time, all phases) | seconds | share |\n|---|---|---|")
    for label, secs in sorted(by_type.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {secs:.2f} | {100 * secs / total:.1f}% |")
    if args.top:
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))


def _time_steps(config, state, split, device, precision, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        training_steps(config, state, split, device, precision, 1)
        times.append(time.perf_counter() - start)
    return times


def _interleaved(args, split, device, variants: dict, label: str) -> None:
    """Median step time of each variant (name -> config), steps interleaved so that machine noise hits all alike."""
    runs = {}
    for name, config in variants.items():
        state = init_state(config, split, device)
        precision = resolve_precision(config.precision, device)
        _time_steps(config, state, split, device, precision, 1)  # warm-up
        runs[name] = (config, state, precision, [])
    for _ in range(args.steps):
        for name, (config, state, precision, times) in runs.items():
            times.extend(_time_steps(config, state, split, device, precision, 1))
    print(f"\n| {label} | median step s | img/s |\n|---|---|---|")
    for name, (config, _, _, times) in runs.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.3f} | {config.batch_size / med:.1f} |")


def mode_layout(args, split, device) -> None:
    """channels_last vs NCHW."""
    _interleaved(
        args,
        split,
        device,
        {"channels_last": make_config(args, channels_last=True), "NCHW": make_config(args, channels_last=False)},
        "memory format",
    )


def mode_matmul(args, split, device) -> None:
    """Every convolution by oneDNN vs the small maps' (7x7 and smaller) as one matrix product (fastnet.shifted_views_conv)."""
    plain = make_config(args)
    small = make_config(args)
    small.model_kwargs = {**small.model_kwargs, "matmul_max_size": 7}
    _interleaved(args, split, device, {"conv2d everywhere": plain, "matmul on maps <= 7x7": small}, "convolutions")


def mode_compile(args, split, device) -> None:
    """torch.compile (inductor) vs eager: compile time, then steady-state steps interleaved."""
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        config = make_config(args)
        state = init_state(config, split, device)
        precision = resolve_precision(config.precision, device)
        if compiled:
            state.model.net.compile()  # in place: the state_dict keys stay those of the eager model
        start = time.perf_counter()
        _time_steps(config, state, split, device, precision, 2)  # oneDNN warm-up; compilation for the compiled one
        runs["compiled" if compiled else "eager"] = (config, state, precision, time.perf_counter() - start, [])
    for _ in range(args.steps):
        for config, state, precision, _, times in runs.values():
            times.extend(_time_steps(config, state, split, device, precision, 1))
    print("\n| mode | first 2 steps s (incl. compile) | median step s | img/s |\n|---|---|---|---|")
    for name, (_, _, _, warm, times) in runs.items():
        med = statistics.median(times)
        print(f"| {name} | {warm:.1f} | {med:.3f} | {args.batch_size / med:.1f} |")
    eager_step, comp_step = (statistics.median(runs[k][4]) for k in ("eager", "compiled"))
    overhead = runs["compiled"][3] - runs["eager"][3]
    saving = eager_step - comp_step
    steps_10_epochs = 10 * 50000 // args.batch_size
    print(
        f"\ncompile overhead {overhead:.1f} s (training graph only; eval mode and new batch shapes compile again); "
        f"saving {saving:.3f} s/step -> over a 10-epoch run ({steps_10_epochs} steps of {args.batch_size}) compile "
        f"{'pays' if saving * steps_10_epochs > overhead else 'does NOT pay'} (net {saving * steps_10_epochs - overhead:+.1f} s)"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("profile", "layout", "compile", "matmul"), default="profile")
    p.add_argument("--recipe", default="fast", choices=sorted(RECIPES))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--widths", help="the fast net's block widths, e.g. 32,64,64")
    p.add_argument("--eval-images", type=int, default=1000, help="images in the profiled TTA evaluation")
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--top", type=int, default=0, help="also print the N most expensive operators")
    args = p.parse_args(argv)
    allocator.retain_freed_memory()  # what fit() does, so the steps timed here are the steps a run takes
    device = resolve_device(args.device)
    split, test = load_split(args)
    print(machine_line(provenance(device)))
    {
        "profile": lambda: mode_profile(args, split, test, device),
        "layout": lambda: mode_layout(args, split, device),
        "compile": lambda: mode_compile(args, split, device),
        "matmul": lambda: mode_matmul(args, split, device),
    }[args.mode]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
