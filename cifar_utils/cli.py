"""`python -m cifar_utils ...`: train, evaluate (and more subcommands as they arrive).

Every user mistake ends as one line on stderr and exit code 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import CifarError

DEFAULT_RUNS = Path("outputs") / "runs"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .models import available_models
    from .recipes import RECIPES
    from .fastnet import AVERAGING, TTA_MODES
    from .training import AUGMENTATIONS, DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULES

    p.add_argument("--recipe", default="seed", choices=sorted(RECIPES), help="starting configuration (default: seed)")
    p.add_argument("--model", choices=available_models(), help="network architecture")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--lr", type=_positive_float, help="learning rate")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--momentum", type=_non_negative_float)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--weight-decay", type=_non_negative_float)
    p.add_argument("--label-smoothing", type=_non_negative_float)
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--warmup-epochs", type=_non_negative_float)
    p.add_argument("--augment", choices=tuple(AUGMENTATIONS), help="batch augmentation (default: the recipe's)")
    p.add_argument("--averaging", choices=AVERAGING, help="weight averaging (default: the recipe's)")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation of the final evaluation (default: the recipe's)")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-size", type=int, help="validation images held out of the 50,000 (default 5000)")
    p.add_argument("--subset", type=_positive_int, dest="train_subset", help="train on only this many images (smoke runs)")
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the md5 check (for small synthetic datasets; arrays are still loaded safely)")
    p.add_argument("--name", help="run name (default: <recipe>-<model>-seed<seed>)")
    p.add_argument("--out", type=Path, help="run folder (default: outputs/runs/<name>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


TRAIN_KEYS = ("model", "epochs", "lr", "batch_size", "optimizer", "momentum", "nesterov", "weight_decay",
              "label_smoothing", "schedule", "warmup_epochs", "augment", "seed", "val_size", "train_subset",
              "device", "precision", "channels_last", "averaging", "tta")


def config_from_args(args: argparse.Namespace):
    from .recipes import recipe_config

    return recipe_config(args.recipe, **{k: getattr(args, k) for k in TRAIN_KEYS})


def run_dir_from_args(args: argparse.Namespace, config) -> Path:
    if args.out is not None:
        return args.out
    name = args.name or f"{args.recipe}-{config.model}-seed{config.seed}"
    return DEFAULT_RUNS / name


def cmd_train(args: argparse.Namespace) -> int:
    from .runs import history_table
    from .training import fit

    if args.resume is not None:
        if args.overwrite:
            raise CifarError("--resume continues a run and --overwrite replaces it; pass only one of them")
        overrides = {k: getattr(args, k) for k in TRAIN_KEYS if getattr(args, k) is not None}
        config = None
        if overrides:
            from .runs import resume_checkpoint
            from .training import TrainConfig

            saved = resume_checkpoint(args.resume)["config"]
            config = TrainConfig.from_dict({**saved, **overrides})
        result = fit(config, data_root=args.data_root, run_dir=args.resume, resume=True, progress=not args.no_progress,
                     verify_data=args.verify)
    else:
        config = config_from_args(args)
        run_dir = run_dir_from_args(args, config)
        result = fit(config, data_root=args.data_root, run_dir=run_dir, overwrite=args.overwrite,
                     progress=not args.no_progress, verify_data=args.verify)
    print()
    print(history_table(result.history))
    print()
    print(summary_line(result.metrics))
    print(f"run saved in {result.run_dir}")
    if getattr(args, "curves_copy", None):
        from . import atomic
        from .runs import CURVES

        atomic.write_bytes(args.curves_copy, (result.run_dir / CURVES).read_bytes())
        print(f"training-vs-validation plot saved as {args.curves_copy}")
    return 0


def summary_line(metrics: dict) -> str:
    parts = []
    if metrics.get("val_accuracy") is not None:
        parts.append(f"validation accuracy {100 * metrics['val_accuracy']:.2f}%")
    if metrics.get("test_accuracy") is not None:
        parts.append(f"test accuracy {100 * metrics['test_accuracy']:.2f}% (loss {metrics['test_loss']:.4f})")
    parts.append(f"wall time {metrics['seconds']:.1f} s on {metrics['provenance']['device_name']}")
    return "; ".join(parts)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import data as D
    from .runs import load_run
    from .training import evaluate, make_split, resolve_device, resolve_precision

    device = resolve_device(args.device)
    run = load_run(args.run_dir, device)
    dataset = D.load_cifar10(args.data_root, verify=args.verify)
    if args.split == "test":
        images, labels = dataset.test_images, dataset.test_labels
    else:
        split = make_split(run.config, dataset)
        images, labels = (split.val_images, split.val_labels) if args.split == "val" else (split.train_images, split.train_labels)
    result = evaluate(run.model, images, labels, device=device, precision=resolve_precision(run.config.precision, device),
                      tta=args.tta)  # a mode name; "none" is a plain evaluation
    result = {"run": str(args.run_dir), "split": args.split, "tta": args.tta, **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.run_dir}: {args.split} accuracy {100 * result['accuracy']:.2f}%, loss {result['loss']:.4f} "
              f"on {result['n']} images{f' ({args.tta} TTA)' if args.tta != 'none' else ''}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict_files, prediction_table

    predictions = predict_files(args.run_dir, args.images, k=args.top, device=args.device)
    for p in predictions:
        if p.error is not None:
            print(f"error: {p.error}", file=sys.stderr)
    if args.json:
        print(json.dumps({"run": str(args.run_dir), "predictions": [p.to_dict() for p in predictions]}))
    elif any(p.error is None for p in predictions):
        print(prediction_table(predictions))
    return 1 if any(p.error is not None for p in predictions) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import parse_value, run_report

    params = {name: parse_value(value) for name, value in args.parameters}
    if args.epochs is not None:
        params["EPOCHS"] = args.epochs
    run_report(args.out, params=params, smoke=args.smoke, data_root=args.data_root, download=args.download,
               reuse=not args.retrain, experiments=not args.skip_experiments)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .fastnet import TTA_MODES

    parser = argparse.ArgumentParser(prog="python -m cifar_utils", description="Train, evaluate and explain CIFAR-10 classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model and save the run", description="Train a model; writes outputs/runs/<name>/.")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a saved run on a split", description="Evaluate a saved run on a split.")
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    ev.add_argument("--split", choices=("test", "val", "train"), default="test")
    ev.add_argument("--data-root")
    ev.add_argument("--no-verify", dest="verify", action="store_false", help="skip the md5 check (synthetic data)")
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ev.add_argument("--tta", action="store_const", const="mirror", default="none",
                    help="average the logits of each image and its mirror")
    ev.add_argument("--tta-mode", dest="tta", choices=TTA_MODES,
                    help="test-time augmentation by name; mirror+translate also uses 1-pixel shifts")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="classify your own images with a saved run",
                        description="Classify PNG/JPEG images (any size or mode; converted to RGB, resized to 32x32) "
                                    "with a saved run and print the top classes. Exit code 1 if any image failed.")
    pr.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top", type=_positive_int, default=3, help="how many classes to show (default 3)")
    pr.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.set_defaults(func=cmd_predict)

    rep = sub.add_parser("report", help="execute the notebooks with papermill; write HTML, figures and results.md",
                         description="Execute notebooks/01..05 in order with papermill and write, under --out: the executed "
                                     "notebooks (notebooks/), their HTML (reports/), every figure (figures/), output.png, "
                                     "results.md and the trained run (runs/<name>/), and keep the experiments' runs in "
                                     "runs/experiments/ and runs/search-trials/. Nothing else is replaced unless all succeed.")
    rep.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    rep.add_argument("--smoke", action="store_true",
                     help="seconds, not minutes: 1000 training images, one epoch, part of the test set; never downloads")
    rep.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    rep.add_argument("-p", "--parameter", nargs=2, action="append", default=[], dest="parameters", metavar=("NAME", "VALUE"),
                     help="a notebook parameter, as papermill's -p (e.g. -p EPOCHS 5 -p LR 0.002 -p RUNS \"['a', 'b']\"); repeatable")
    rep.add_argument("--epochs", type=_positive_int, help="shortcut for -p EPOCHS N")
    rep.add_argument("--no-download", dest="download", action="store_false", default=None,
                     help="fail instead of downloading a missing dataset")
    rep.add_argument("--retrain", action="store_true",
                     help="train again even when outputs/runs/ holds a finished run of the same configuration")
    rep.add_argument("--skip-experiments", action="store_true",
                     help="run notebooks 01-03 only: the ablation (04) and the search (05) train about 40 runs, "
                          "over two hours on a 2-core CPU")
    rep.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None, curves_copy: Path | None = None) -> int:
    """Run one subcommand. `curves_copy`: also save the run's curves there (train.py's output.png)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.curves_copy = curves_copy
    try:
        return args.func(args)
    except CifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 130 if type(exc).__name__ == "TrainingInterrupted" else 2
    except KeyboardInterrupt:  # outside the epochs (loading data, the final evaluation): nothing half-written
        print("error: interrupted (Ctrl-C); files already written are complete", file=sys.stderr)
        return 130
