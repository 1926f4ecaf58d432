"""`python -m cifar_utils ...`: train, evaluate, predict, report, search create and worker (a search's study and its
trials), ablation, and verify (committed run records trained again here).

Every user mistake ends as one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
from pathlib import Path

from .analysis import ablation, experiments, search_storage, verification
from .analysis import architecture_comparison as AR
from .analysis import search as S
from .analysis.search import run_worker
from .analysis.tables import history_table
from .core import data as D
from .core.config import CHOICES, DEVICES, FIELDS, RECIPES, TTA_MODES, TrainConfig, recipe_config
from .core.evaluation import evaluate, resolve_device, resolve_precision
from .core.models import available_models
from .errors import CifarError, ReportInterrupted, TrainingInterrupted, os_error_cause
from .paths import outputs_dir, runs_dir
from .predict import predict_files, prediction_table
from .report.runner import parse_value, run_report
from .runs import atomic, distributed
from .runs.run_files import CURVES, default_run_name, load_run, resume_checkpoint
from .runs.training import fit


def _checked(convert, acceptable, what: str):
    """An argparse type: `convert` the text, then refuse values that are not `acceptable`, naming `what` it must be."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not acceptable(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v > 0, "a positive whole number")
_positive_float = _checked(float, lambda v: v > 0 and v != float("inf"), "a positive number")  # NaN is not > 0
_non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"widths\": [32, 64, 64]}}', got {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


# How each kind of TrainConfig field is read from the command line (see config._knob).
_KIND_TYPES = {
    "positive_int": _positive_int,
    "positive_float": _positive_float,
    "non_negative_float": _non_negative_float,
    "int": int,
    "json": _json_object,
}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The training flags: one per TrainConfig field (None: the recipe's value), then the run's own options."""
    p.add_argument("--recipe", default="seed", choices=sorted(RECIPES), help="starting configuration (default: seed)")
    for name, f in FIELDS.items():
        kind, flag = f.metadata["kind"], f.metadata["flag"] or "--" + name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: the recipe's)"
        if kind == "bool":
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind == "model":
            p.add_argument(flag, dest=name, choices=available_models(), help=help_text)
        elif kind == "choice":
            p.add_argument(flag, dest=name, choices=CHOICES[name], help=help_text)
        else:
            p.add_argument(flag, dest=name, type=_KIND_TYPES[kind], help=help_text)
    p.add_argument(
        "--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else <project>/data)"
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the md5 check (for small synthetic datasets; arrays are still loaded safely)",
    )
    p.add_argument("--name", help="run name (default: <recipe>-<model>-seed<seed>)")
    p.add_argument("--out", type=Path, help="run folder (default: outputs/runs/<name>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last epoch")
    p.add_argument(
        "--wait",
        action="store_true",
        help="if another process is writing the run folder, wait for it to finish instead of refusing",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _given(args: argparse.Namespace) -> dict:
    """The config fields set on the command line."""
    return {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return recipe_config(args.recipe, **_given(args))


def run_dir_from_args(args: argparse.Namespace, config: TrainConfig) -> Path:
    if args.out is not None:
        return args.out
    return runs_dir() / (args.name or default_run_name(args.recipe, config))


def _resume_command(args: argparse.Namespace, run_dir) -> str:
    command = f"{distributed.launch_command()} -m cifar_utils train --resume {shlex.quote(str(run_dir))}"
    command += f" --data-root {shlex.quote(str(args.data_root))}" if args.data_root is not None else ""
    return command + ("" if args.verify else " --no-verify")


def cmd_train(args: argparse.Namespace) -> int:
    try:
        if args.resume is not None:
            if args.overwrite:
                raise CifarError("--resume continues a run and --overwrite replaces it; pass only one of them")
            overrides = _given(args)
            config = None
            if overrides:
                config = TrainConfig.from_dict({**resume_checkpoint(args.resume)["config"], **overrides})
            result = fit(
                config,
                data_root=args.data_root,
                run_dir=args.resume,
                resume=True,
                wait=args.wait,
                progress=not args.no_progress,
                verify_data=args.verify,
            )
        else:
            config = config_from_args(args)
            result = fit(
                config,
                data_root=args.data_root,
                run_dir=run_dir_from_args(args, config),
                wait=args.wait,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                verify_data=args.verify,
            )
    except TrainingInterrupted as stop:  # the message names the command that continues, in this CLI's terms
        stop.args = (
            stop.describe(
                _resume_command(args, stop.run_dir),
                f"train it again with --out {shlex.quote(str(stop.run_dir))} --overwrite",
            ),
        )
        raise
    if not distributed.is_main():  # under torchrun rank 0 speaks for the run
        return 0
    print()
    print(history_table(result.history))
    print()
    print(summary_line(result.metrics))
    print(f"run saved in {result.run_dir}")
    if getattr(args, "curves_copy", None):
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
    device = resolve_device(args.device)
    run = load_run(args.run_dir, device)
    dataset = D.load_cifar10(args.data_root, verify=args.verify)
    if args.split == "test":
        images, labels = dataset.test_images, dataset.test_labels
    else:
        split = D.split_dataset(dataset, run.config.val_size, run.config.train_subset)
        images, labels = (
            (split.val_images, split.val_labels) if args.split == "val" else (split.train_images, split.train_labels)
        )
    result = evaluate(
        run.model,
        images,
        labels,
        device=device,
        precision=resolve_precision(run.config.precision, device),
        tta=args.tta,
    )  # a mode name; "none" is a plain evaluation
    result = {"run": str(args.run_dir), "split": args.split, "tta": args.tta, **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.run_dir}: {args.split} accuracy {100 * result['accuracy']:.2f}%, loss {result['loss']:.4f} "
            f"on {result['n']} images{f' ({args.tta} TTA)' if args.tta != 'none' else ''}"
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
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
    params = {name: parse_value(value) for name, value in args.parameters}
    if args.epochs is not None:
        params["EPOCHS"] = args.epochs
    run_report(
        args.out,
        params=params,
        smoke=args.smoke,
        data_root=args.data_root,
        download=args.download,
        reuse=not args.retrain,
        experiments=not args.skip_experiments,
        wait=args.wait,
        cell_timeout=args.cell_timeout,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        done = run_worker(
            args.study,
            args.storage,
            trials=args.trials,
            data_root=args.data_root,
            verify_data=args.verify,
            seed=args.seed,
            heartbeat_interval=args.heartbeat,
            grace_period=args.grace,
            retries=args.retries,
        )
    except TrainingInterrupted as stop:  # Optuna has marked the trial failed; the message says so in this CLI's terms
        stop.args = (
            "worker interrupted (Ctrl-C); its trial is marked failed in the study; run the worker again to go on",
        )
        raise
    print(
        f"worker finished {len(done)} trial{'s' if len(done) != 1 else ''} of study {args.study!r} in "
        f"{search_storage.describe(args.storage)}" + (f": {', '.join(map(str, done))}" if done else "")
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """`search create`: notebook 05's study, created (or found) in the storage, with no trial run."""
    budget = experiments.budget(
        args.smoke,
        args.epochs,
        args.widths,
        args.subset,
        args.val_size,
        args.device,
        args.precision,
        args.batch_size,
    )
    planned = S.notebook_search(budget, args.trials)
    storage = args.storage or S.notebook_storage(experiments.runs_store(outputs_dir()))
    if not search_storage.is_database(storage):  # absolute, so that the printed command works from any folder
        storage = str(Path(storage).expanduser().resolve())
    name = args.study or S.default_name(planned.base, planned.space, planned.trials)
    study = S.create_search(name, storage, planned.base, planned.space, planned.trials)
    held = study.get_trials(deepcopy=False)
    finished = study.get_trials(deepcopy=False, states=S.FINISHED)
    print(
        f"study {name!r} in {search_storage.describe(storage)}: {planned.trials} trials of {budget.describe()}; "
        f"searched: {S.describe_space(planned.space)}"
    )
    print(
        f"it holds {len(held)} trial{'s' if len(held) != 1 else ''} ({len(finished)} finished); run its trials on "
        f"every machine that has the data and reaches the storage, each worker with its own --seed:"
    )
    print(f"    {S.worker_command(name, storage)}")
    if search_storage.describe(storage) != str(storage):
        print("(the database password is shown as ***: put it in place there)")
    elif not search_storage.is_database(storage):
        print("(a journal file: other machines need it on a shared disk; for many machines use a database URL)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cifar_utils", description="Train, evaluate and explain CIFAR-10 classifiers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train a model and save the run", description="Train a model; writes outputs/runs/<name>/."
    )
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate", help="evaluate a saved run on a split", description="Evaluate a saved run on a split."
    )
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    ev.add_argument("--split", choices=("test", "val", "train"), default="test")
    ev.add_argument("--data-root")
    ev.add_argument("--no-verify", dest="verify", action="store_false", help="skip the md5 check (synthetic data)")
    ev.add_argument("--device", default="auto", choices=DEVICES)
    ev.add_argument(
        "--tta",
        action="store_const",
        const="mirror",
        default="none",
        help="average the logits of each image and its mirror",
    )
    ev.add_argument(
        "--tta-mode",
        dest="tta",
        choices=TTA_MODES,
        help="test-time augmentation by name; mirror+translate also uses 1-pixel shifts",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        help="classify your own images with a saved run",
        description="Classify PNG/JPEG images (any size or mode; converted to RGB, resized to 32x32) "
        "with a saved run and print the top classes. Exit code 1 if any image failed.",
    )
    pr.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top", type=_positive_int, default=3, help="how many classes to show (default 3)")
    pr.add_argument("--device", default="auto", choices=DEVICES)
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.set_defaults(func=cmd_predict)

    rep = sub.add_parser(
        "report",
        help="execute the notebooks with papermill; write HTML, figures and results.md",
        description="Execute notebooks/01..07 in order with papermill and write, under --out: the executed "
        "notebooks (notebooks/), their HTML (reports/), every figure (figures/), output.png, "
        "results.md and the trained run (runs/<name>/), and keep the experiments' runs in "
        "experiments/runs/ and experiments/studies.journal. Nothing else is replaced unless all succeed.",
    )
    rep.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    rep.add_argument(
        "--smoke",
        action="store_true",
        help="seconds, not minutes: 1000 training images, one epoch, part of the test set; never downloads",
    )
    rep.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    rep.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        dest="parameters",
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, as papermill's -p (e.g. -p EPOCHS 5 -p LR 0.002 -p RUNS \"['a', 'b']\"); repeatable",
    )
    rep.add_argument("--epochs", type=_positive_int, help="shortcut for -p EPOCHS N")
    rep.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        default=None,
        help="fail instead of downloading a missing dataset",
    )
    rep.add_argument(
        "--retrain",
        "--rerun",
        action="store_true",
        help="train again even when outputs/runs/ (or, for notebooks 04, 05 and 07, experiments/runs/) holds a "
        "finished run of the same configuration: the seed baseline, the committed fast model and every "
        "experiment",
    )
    rep.add_argument(
        "--skip-experiments",
        action="store_true",
        help="run notebooks 01-03 only: the ablation (04), the search (05) and the architectures (07) train "
        "dozens of runs, many hours on a 2-core CPU, and the robustness notebook (06) evaluates every run "
        "on 65 corrupted copies of the test set",
    )
    rep.add_argument(
        "--wait",
        action="store_true",
        help="if another report is writing the output folder, wait for it to finish instead of refusing",
    )
    rep.add_argument(
        "--cell-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="stop the report when one notebook cell runs longer than this (default: no limit)",
    )
    rep.set_defaults(func=cmd_report)

    se = sub.add_parser(
        "search",
        help="create notebook 05's hyperparameter search (an Optuna study) without running trials",
        description="search create: create the study notebook 05 runs, with its settings (the same parameters, "
        "the same defaults, the same name), in the storage, without running a trial, and print the worker "
        "command that runs its trials on other machines. A study already there with these settings is "
        "left as it is; one of that name with other settings is refused.",
    )
    se.add_argument("action", choices=["create"], help="create: the study, no trials")
    se.add_argument("--study", metavar="NAME", help="the study's name (default: one derived from its settings)")
    se.add_argument(
        "--storage",
        metavar="URL",
        help="a database URL (postgresql://user@host:port/db, sqlite:///file.db) or a journal file path "
        "(default: outputs/experiments/studies.journal, notebook 05's in the report)",
    )
    se.add_argument(
        "--trials",
        type=_positive_int,
        metavar="N",
        help="trials the study runs in all, as the notebook's N_TRIALS (default: the notebook's)",
    )
    se.add_argument("--smoke", action="store_true", help="the notebook's smoke-mode search (tiny, for tests)")
    se.add_argument("--epochs", type=_positive_int, help="EXPERIMENT_EPOCHS: epochs of every trial")
    se.add_argument(
        "--widths", type=_positive_int, nargs=3, metavar="W", help="EXPERIMENT_WIDTHS: the fast net's three widths"
    )
    se.add_argument("--subset", type=_positive_int, help="EXPERIMENT_SUBSET: training images (default: all)")
    se.add_argument("--val-size", type=_positive_int, help="EXPERIMENT_VAL_SIZE: validation images held out")
    se.add_argument("--batch-size", type=_positive_int, help="EXPERIMENT_BATCH_SIZE: training batch size")
    se.add_argument("--device", choices=DEVICES, help="DEVICE (default: auto)")
    se.add_argument("--precision", choices=CHOICES["precision"], help="PRECISION (default: auto)")
    se.set_defaults(func=cmd_search)

    wk = sub.add_parser(
        "worker",
        help="run trials of a hyperparameter search (an Optuna study)",
        description="Run trials of a search that notebook 05 or `search create` created, "
        "from any machine that has the data and reaches the storage; several workers may "
        "run at once. Trials are scored on the validation split only. A trial whose worker "
        "dies is marked failed and queued once more by the next worker.",
    )
    wk.add_argument("--study", required=True, metavar="NAME", help="the study's name")
    wk.add_argument(
        "--storage",
        metavar="URL",
        help="a database URL (postgresql://user@host:port/db, sqlite:///file.db) or a journal file path "
        "(default: outputs/experiments/studies.journal, notebook 05's)",
    )
    wk.add_argument(
        "--trials",
        type=_positive_int,
        metavar="N",
        help="run at most N trials here (default: until the study holds the trials it wants)",
    )
    wk.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    wk.add_argument("--no-verify", dest="verify", action="store_false", help="skip the md5 check (synthetic data)")
    wk.add_argument(
        "--seed", type=int, help="seed of this worker's sampler (default: random; give each worker its own)"
    )
    wk.add_argument(
        "--heartbeat",
        type=_positive_int,
        default=search_storage.HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help=f"databases: seconds between a running trial's heartbeats (default {search_storage.HEARTBEAT_INTERVAL})",
    )
    wk.add_argument(
        "--grace",
        type=_positive_int,
        default=search_storage.GRACE_PERIOD,
        metavar="SECONDS",
        help=f"databases: a trial without a heartbeat this long counts as dead (default {search_storage.GRACE_PERIOD})",
    )
    wk.add_argument(
        "--retries",
        type=_checked(int, lambda v: v >= 0, "a whole number >= 0"),
        default=1,
        help="how many times a dead worker's trial is queued again (default 1)",
    )
    wk.set_defaults(func=cmd_worker)

    ab = sub.add_parser(
        "ablation",
        help="train a follow-up round of notebook 04's ablation into the committed records",
        description="Train the runs of one follow-up round of the ablation (cifar_utils.analysis.ablation."
        "round_configs) into the experiments' store, headless; notebook 04 then reads them. "
        "Finished runs are reused; nothing else is replaced.",
    )
    ab.add_argument("round", choices=["confirm", "sgd-sweep", "sgd-tuned", "long"])
    ab.add_argument("--store", metavar="DIR", help="the run records' folder (default: outputs/experiments/runs)")
    ab.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    ab.set_defaults(func=cmd_ablation)

    ar = sub.add_parser(
        "architectures",
        help="train notebook 07's matched-budget runs into the committed records and read the leaders' test once",
        description="Train every configuration of notebook 07's plan (cifar_utils.analysis.architecture_comparison."
        "BUDGETS, its seeds) into the experiments' store, headless; then, within each budget, read the test set once "
        "for the architecture that leads on validation, so the records carry it without the weights. Finished runs "
        "are reused; nothing else is replaced. Run it on an otherwise idle machine: the budgets are seconds.",
    )
    ar.add_argument("--store", metavar="DIR", help="the run records' folder (default: outputs/experiments/runs)")
    ar.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    ar.set_defaults(func=cmd_architectures)

    ve = sub.add_parser(
        "verify",
        help="train a random sample of the committed run records again here and compare",
        description="Pick N run records at random from the experiments' store (config.json, history.csv, "
        "metrics.json), train each again from its config.json into a temporary folder (the records are only "
        "read), and print per run the recorded and the reproduced validation accuracy, where each was made, "
        "and a verdict: identical (required on a CPU of the same ISA class at the same precision), else within "
        f"or outside {verification.SPREAD_FACTOR} pooled seed-to-seed SDs of the store's runs. Exit code 0 "
        "when every run agrees, 1 when one does not. Each run takes as long as it took to train (~35 s at the "
        "default budget on 2 cores; much longer where its precision is bf16 and this CPU emulates it).",
    )
    ve.add_argument("--sample", type=_positive_int, required=True, metavar="N", help="how many records to train")
    ve.add_argument("--seed", type=int, metavar="S", help="seed of the random draw (default: random, printed)")
    ve.add_argument("--store", metavar="DIR", help="the run records' folder (default: outputs/experiments/runs)")
    ve.add_argument("--data-root", help="folder holding cifar-10-batches-py/ (default: $CIFAR10_ROOT, else ./data)")
    ve.add_argument("--no-verify", dest="verify", action="store_false", help="skip the md5 check (synthetic data)")
    ve.set_defaults(func=cmd_verify)
    return parser


def cmd_ablation(args) -> int:
    store = Path(args.store) if args.store else experiments.runs_store(outputs_dir())
    data = D.load_cifar10(D.data_root(args.data_root), download=False, verify=False)
    budget = experiments.budget()
    sweep = None
    if args.round == "sgd-tuned":
        configs, labels = ablation.round_configs("sgd-sweep", budget)
        sweep = experiments.train_runs(configs, store, data, labels=labels)
    configs, labels = ablation.round_configs(args.round, budget, sweep)
    frame = experiments.train_runs(configs, store, data, labels=labels)
    print(f"{args.round}: {len(frame)} runs in {store} ({int(frame['reused'].sum())} reused)")
    return 0


def cmd_architectures(args) -> int:
    store = Path(args.store) if args.store else experiments.runs_store(outputs_dir())
    data = D.load_cifar10(D.data_root(args.data_root), download=False, verify=False)
    plan = AR.plan()
    configs, labels = AR.runs_to_train(plan)
    frame = experiments.train_runs(configs, store, data, labels=labels)
    table = AR.budget_table(frame, plan)
    tested = experiments.test_results(AR.chosen_configs(table, plan), store, data)
    print(
        f"architectures: {len(frame)} runs in {store} ({int(frame['reused'].sum())} reused); test read for "
        f"{len(tested)} runs of the budgets' leaders"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Train a random sample of the committed run records again here; exit 1 when one of them does not agree."""
    store = Path(args.store) if args.store else experiments.runs_store(outputs_dir())
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)  # printed, to repeat it
    checks = verification.verify(
        store, args.sample, seed, data_root=D.data_root(args.data_root), verify_data=args.verify
    )
    failed = [c.run for c in checks if not c.agrees]
    print(
        f"{len(checks) - len(failed)} of {len(checks)} sampled runs agree with their records"
        + (f"; not: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None, curves_copy: Path | None = None) -> int:
    """Run one subcommand. `curves_copy`: also save the run's curves there (train.py's output.png)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.curves_copy = curves_copy
    try:
        return args.func(args)
    except CifarError as exc:  # under torchrun every rank stops with the same error (distributed.agree); rank 0 says it
        if distributed.is_main():
            print(f"error: {exc}", file=sys.stderr)
        return 130 if isinstance(exc, (TrainingInterrupted, ReportInterrupted)) else 2
    except OSError as exc:  # a file problem that no module turned into its own message first
        print(
            f"error: {exc.filename or 'a file'}: {os_error_cause(exc)}; check the path, its permissions and its disk",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # outside the epochs (loading data, the final evaluation): nothing half-written
        if distributed.is_main():
            print("error: interrupted (Ctrl-C); files already written are complete", file=sys.stderr)
        return 130
