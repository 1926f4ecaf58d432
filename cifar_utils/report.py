"""The report: execute the numbered notebooks with papermill, render them as HTML, write results.md.

    python -m cifar_utils report                 # the full report into outputs/
    python -m cifar_utils report --smoke         # seconds: a 1000-image subset, one epoch

What it writes under the output folder (default `outputs/`):

    notebooks/<nb>.ipynb   the executed notebooks        reports/<nb>.html   the same as HTML
    figures/*.png          every figure they show        output.png          the training curves (seed's name)
    results.md             tables and provenance         runs/<name>/        the run notebook 02 trained
    experiments/*.md       the sections of notebooks 04 and 05 (also in results.md)
    runs/experiments/, runs/search-trials/               the runs of notebooks 04 and 05

Everything is built in a staging folder inside the output folder and moved into place only after
every notebook has run, so a failure leaves the previous report untouched. The experiments' runs
are the exception: they are written straight into runs/, so that an interrupted report keeps
every run it finished, and the next one reuses them.

This module also holds what the notebooks share with the report: how they find their settings
(smoke mode, output and data folders), the training configuration from their parameters, and
the tables they show. Papermill and nbconvert are imported only when a report runs.
"""
from __future__ import annotations

import ast
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import atomic
from .errors import CifarError, ConfigError, DatasetError

EXPERIMENT_NOTEBOOKS = ("04_augmentation_ablation.ipynb", "05_hyperparameter_search.ipynb")
NOTEBOOKS = ("01_data_exploration.ipynb", "02_training.ipynb", "03_results_analysis.ipynb", *EXPERIMENT_NOTEBOOKS)
EXPERIMENTS = "experiments"  # the sections notebooks 04 and 05 write for results.md (OUTPUT_DIR/experiments/*.md)
SMOKE_ENV = "CIFAR_SMOKE"  # "1": notebooks default to smoke mode (tests set it); else $CI decides
OUTPUTS_ENV = "CIFAR_OUTPUTS"  # where notebooks write runs and figures by default (tests: a temp folder)
# Smoke mode: enough to execute every cell in seconds, not to learn anything.
SMOKE_TRAIN = {"epochs": 1, "train_subset": 1000}
SMOKE_TEST_IMAGES = 1000
ANALYSIS = "analysis.json"  # written into a run folder by notebook 03
RESULTS = "results.md"
OUTPUT_PNG = "output.png"
# Notebook 02's parameters that are TrainConfig fields (None in the notebook: the recipe's value).
TRAIN_PARAMETERS = {"MODEL": "model", "EPOCHS": "epochs", "LR": "lr", "OPTIMIZER": "optimizer",
                    "BATCH_SIZE": "batch_size", "AUGMENT": "augment", "SEED": "seed", "VAL_SIZE": "val_size",
                    "TRAIN_SUBSET": "train_subset", "DEVICE": "device", "PRECISION": "precision"}
# Parameters every notebook must declare: the report sets them.
NOTEBOOK_REQUIRED = ("SMOKE", "DATA_ROOT", "VERIFY_DATA", "OUTPUT_DIR")
# Parameters the report sets itself; users choose them with the report's own options.
REPORT_OWNED = {"OUTPUT_DIR": "--out", "RUNS_DIR": "--out", "VERIFY_DATA": "(the report verifies the data once)"}


# ----------------------------------------------------------------------------- notebook settings


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() not in ("", "0", "false", "no", "off")


def smoke_default() -> bool:
    """Smoke mode unless told otherwise: $CIFAR_SMOKE if set, else whether $CI is set (as in CI services)."""
    if os.environ.get(SMOKE_ENV) is not None:
        return _truthy(os.environ[SMOKE_ENV])
    return _truthy(os.environ.get("CI"))


def project_dir() -> Path:
    """The checkout this library lives in (it holds notebooks/), else the working folder."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "notebooks").is_dir() else Path.cwd()


def outputs_dir(path: str | os.PathLike | None = None) -> Path:
    """The notebooks' output folder: `path`, else $CIFAR_OUTPUTS, else <project>/outputs."""
    if path not in (None, ""):
        return Path(path).expanduser()
    return Path(os.environ.get(OUTPUTS_ENV) or project_dir() / "outputs").expanduser()


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The dataset root for a notebook: `path`, else $CIFAR10_ROOT, else <project>/data.

    Notebooks run inside notebooks/, so the library's cwd-relative ./data would be the wrong folder.
    """
    from .data import ROOT_ENV

    if path not in (None, ""):
        return Path(path).expanduser()
    return Path(os.environ.get(ROOT_ENV) or project_dir() / "data").expanduser()


def training_config(recipe: str = "seed", smoke: bool = False, **overrides):
    """The recipe's TrainConfig with the given overrides (None: keep the recipe's); smoke shrinks it."""
    from .recipes import recipe_config

    given = {k: v for k, v in overrides.items() if v is not None}
    return recipe_config(recipe, **{**(SMOKE_TRAIN if smoke else {}), **given})


def default_run_name(recipe: str, config, smoke: bool = False) -> str:
    """<recipe>-<model>-seed<seed>, as `train` names runs; smoke runs get '-smoke' so they never replace a real one."""
    return f"{recipe}-{config.model}-seed{config.seed}" + ("-smoke" if smoke else "")


# ----------------------------------------------------------------------------- tables for the notebooks


def split_counts(split, test_labels, num_classes: int = 10) -> dict:
    """{split name: (C,) image counts per class} for the training, validation and test images."""
    from .metrics import class_counts

    return {"train": class_counts(split.train_labels, num_classes), "validation": class_counts(split.val_labels, num_classes),
            "test": class_counts(test_labels, num_classes)}


def counts_table(counts: dict, classes):
    """Images per class (rows, plus a total row) and split (columns)."""
    import pandas as pd

    frame = pd.DataFrame({name: [int(v) for v in values] for name, values in counts.items()}, index=list(classes))
    frame.loc["total"] = frame.sum()
    frame.index.name = "class"
    return frame


def constants_table(mean, std):
    """The per-channel normalisation constants on the 0-255 and the 0-1 scale."""
    import pandas as pd

    rows = {"mean (0-255)": [float(v) for v in mean], "std (0-255)": [float(v) for v in std],
            "mean (0-1)": [float(v) / 255 for v in mean], "std (0-1)": [float(v) / 255 for v in std]}
    return pd.DataFrame(rows, index=["red", "green", "blue"]).round(4)


def per_class_table(report: dict, classes):
    import pandas as pd

    frame = pd.DataFrame({"precision": report["precision"].numpy(), "recall": report["recall"].numpy(),
                          "f1": report["f1"].numpy(), "support": report["support"].numpy()}, index=list(classes))
    frame.loc["macro average"] = [frame["precision"].mean(), frame["recall"].mean(), frame["f1"].mean(), frame["support"].sum()]
    frame["support"] = frame["support"].astype(int)
    frame.index.name = "class"
    return frame.round(4)


def confused_pairs_table(pairs, classes):
    import pandas as pd

    return pd.DataFrame([(classes[t], classes[p], n, round(100 * share, 2)) for t, p, n, share in pairs],
                        columns=["true class", "predicted as", "images", "% of true class"])


def analysis_summary(logits, labels, classes, n_bins: int = 15) -> dict:
    """What notebook 03 records about a run's test predictions (saved as the run's analysis.json)."""
    import torch

    from . import metrics as M

    confusion = M.confusion_matrix(labels, logits, len(classes))
    report = M.per_class_report(confusion)
    loss = torch.nn.functional.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    return {"test_images": len(labels), "test_accuracy": M.accuracy(logits, labels), "test_loss": loss,
            "ece": M.expected_calibration_error(M.calibration_bins(logits, labels, n_bins)), "calibration_bins": n_bins,
            "per_class": {name: {k: float(report[k][i]) for k in ("precision", "recall", "f1")} for i, name in enumerate(classes)},
            "confusion": confusion.tolist()}


def write_analysis(run_dir: str | os.PathLike, summary: dict) -> Path:
    path = Path(run_dir) / ANALYSIS
    atomic.write_text(path, json.dumps(summary, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- runs and their comparison


def list_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Run folders (holding config.json) under `runs_dir`, the most recently written first."""
    from .runs import CONFIG

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if p.is_dir() and (p / CONFIG).is_file()]
    return sorted(found, key=lambda p: (-_run_mtime(p), p.name))


def _run_mtime(run_dir: Path) -> float:
    return max(f.stat().st_mtime for f in run_dir.iterdir() if f.is_file())


def resolve_runs(names, runs_dir: str | os.PathLike) -> list[Path]:
    """Run folders from names (under `runs_dir`) or paths; a missing one is a CifarError naming it."""
    from .runs import CHECKPOINT

    if isinstance(names, (str, os.PathLike)):
        names = [names]
    resolved = []
    for name in names:
        path = Path(name).expanduser()
        if not path.is_dir() and not path.is_absolute() and (Path(runs_dir) / path).is_dir():
            path = Path(runs_dir) / path
        if not path.is_dir():
            raise CifarError(f"run folder {name!s} does not exist (looked for {path} and {Path(runs_dir) / str(name)}); "
                             f"runs present: {', '.join(p.name for p in list_runs(runs_dir)) or 'none'}")
        if not (path / CHECKPOINT).is_file():
            raise CifarError(f"{path} is not a finished run (no {CHECKPOINT}); train it first, or drop it from the list")
        if path not in resolved:
            resolved.append(path)
    return resolved


def select_runs(names, runs_dir: str | os.PathLike) -> list[Path]:
    """The runs a notebook analyses: `names` (see resolve_runs), or None for every run in `runs_dir`, newest first."""
    found = resolve_runs(names, runs_dir) if names else list_runs(runs_dir)
    if not found:
        raise CifarError(f"no runs found in {runs_dir}; train one first (run notebooks/02_training.ipynb, or "
                         f"python -m cifar_utils train), or name run folders in RUNS")
    return found


def _fmt(value, spec: str) -> str:
    """`value` formatted by `spec` (".2%": a fraction as a percentage), or 'n/a' when missing or NaN."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


COMPARISON_COLUMNS = ("Run", "Model", "Optimizer", "LR", "Augment", "Epochs", "Train images", "Best val accuracy",
                      "Final val accuracy", "Test accuracy", "Test loss", "Test images", "Wall time (s)", "Device")


def run_summary(run_dir: str | os.PathLike) -> dict:
    """One run's row for the comparison: its config, best / final validation, test result and wall time.

    Test numbers come from metrics.json (the whole test set, written by `fit`); a run trained
    without a test evaluation (smoke mode) falls back on notebook 03's analysis.json.
    """
    from . import runs

    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / runs.CONFIG)
    metrics = runs.read_json(run_dir / runs.METRICS) if (run_dir / runs.METRICS).is_file() else {}
    history = runs.read_history(run_dir / runs.HISTORY) if (run_dir / runs.HISTORY).is_file() else []
    analysis = runs.read_json(run_dir / ANALYSIS) if (run_dir / ANALYSIS).is_file() else {}
    val = [h["val_acc"] for h in history if not math.isnan(h["val_acc"])]
    if metrics.get("test_accuracy") is not None:
        test = (metrics["test_accuracy"], metrics.get("test_loss"), metrics.get("test_images", 10000))  # older runs: all
    else:
        test = (analysis.get("test_accuracy"), analysis.get("test_loss"), analysis.get("test_images"))
    prov = metrics.get("provenance") or config.get("provenance") or {}
    return {"Run": run_dir.name, "Model": config.get("model"), "Optimizer": config.get("optimizer"),
            "LR": _fmt(config.get("lr"), "g"), "Augment": config.get("augment"),
            "Epochs": f"{len(history)}/{config.get('epochs')}", "Train images": metrics.get("train_images", "n/a"),
            "Best val accuracy": _fmt(max(val) if val else None, ".2%"),
            "Final val accuracy": _fmt(val[-1] if val else None, ".2%"),
            "Test accuracy": _fmt(test[0], ".2%"), "Test loss": _fmt(test[1], ".4f"), "Test images": test[2] or "n/a",
            "Wall time (s)": _fmt(metrics.get("seconds"), ".1f"), "Device": prov.get("device", "n/a")}


def comparison_frame(run_dirs):
    """The comparison table of runs as a pandas DataFrame (formatted strings, like runs.history_frame)."""
    import pandas as pd

    return pd.DataFrame([run_summary(p) for p in run_dirs], columns=list(COMPARISON_COLUMNS)).set_index("Run")


def markdown_table(frame) -> str:
    """A DataFrame (index included) as a GitHub markdown table, without needing `tabulate`."""
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- committed notebooks


def strip_notebook(nb):
    """The notebook as it is committed: no outputs, execution counts or run metadata.

    Executed copies belong in outputs/notebooks/ (the report writes them there).
    """
    for cell in nb.cells:
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    nb.metadata.get("language_info", {}).pop("version", None)  # the Python of whoever ran it last
    return nb


def strip_outputs(path: str | os.PathLike) -> bool:
    """Strip a notebook file in place (see strip_notebook); True if it changed.

        python -c "from cifar_utils.report import strip_outputs as s; [s(p) for p in __import__('glob').glob('notebooks/*.ipynb')]"
    """
    import nbformat

    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = strip_notebook(nbformat.reads(before, as_version=4))
    after = nbformat.writes(nb) + "\n"
    if after != before:
        atomic.write_text(path, after)
    return after != before


# ----------------------------------------------------------------------------- the report


def parse_value(text: str):
    """A -p value as papermill's CLI reads it: a Python literal (2, 0.1, True, None, [..]) or else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def notebook_parameters(path: Path) -> dict:
    """{name: default source text} of a notebook's cell tagged `parameters` (papermill.inspect_notebook)."""
    import papermill

    if not path.is_file():
        raise CifarError(f"notebook {path} not found; the report needs {', '.join(NOTEBOOKS)} in {path.parent}")
    found = papermill.inspect_notebook(str(path))
    if not found:
        raise CifarError(f"notebook {path.name} has no cell tagged 'parameters'; tag its first code cell after the imports")
    return {name: info.get("default") for name, info in found.items()}


def _literal_default(source):
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError):
        return None


@dataclass
class ReportResult:
    out_dir: Path
    run_dir: Path
    notebooks: list[Path] = field(default_factory=list)
    html: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    results: Path | None = None
    seconds: float = 0.0


class NotebookFailed(CifarError):
    pass


def _normalise_params(params: dict, declared: dict[str, dict]) -> dict:
    """Map user names onto declared parameter names (case-insensitive); refuse unknown or report-owned ones."""
    known = sorted(set().union(*[set(d) for d in declared.values()]))
    upper = {name.upper(): name for name in known}
    normalised, unknown = {}, []
    for name, value in params.items():
        target = name if name in known else upper.get(name.upper())
        if target is None:
            unknown.append(name)
        elif target in REPORT_OWNED:
            raise ConfigError(f"parameter {target} is set by the report itself; use {REPORT_OWNED[target]} instead")
        else:
            normalised[target] = value
    if unknown:
        raise ConfigError(f"unknown notebook parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"the notebooks take: {', '.join(n for n in known if n not in REPORT_OWNED)}")
    return normalised


def _check_experiment_parameters(params: dict, smoke: bool) -> None:
    """Notebooks 04 and 05's sizes and choices, refused now rather than after notebooks 01-03."""
    from . import experiments as E

    settings = E.experiment_settings(smoke, seeds=params.get("SEEDS"), epochs=params.get("EXPERIMENT_EPOCHS"),
                                     train_subset=params.get("EXPERIMENT_SUBSET"), trials=params.get("TRIALS"),
                                     augment=params.get("SEARCH_AUGMENT"))
    E.ablation_configs(settings, params.get("AUGMENTS") or E.ABLATION_AUGMENTS)
    E.sample_trials(settings, seed=params.get("SEARCH_SEED", 0))


def _check_dataset(root: Path, download: bool, verify: bool) -> None:
    from . import data as D

    folder = root / D.FOLDER
    if not folder.is_dir():
        if not download:
            raise DatasetError(f"CIFAR-10 not found: {folder} does not exist; point --data-root or ${D.ROOT_ENV} at the "
                               f"folder that holds {D.FOLDER}/ (the report checks this before running any notebook)")
        D.load_cifar10(root, download=True, verify=verify)
    elif verify:
        D.verify_files(folder)


def _failure(name: str, exc: Exception, failed_copy: Path | None, out_dir: Path) -> NotebookFailed:
    from papermill.exceptions import PapermillExecutionError

    where = f"; the executed notebook is {failed_copy}" if failed_copy else ""
    if isinstance(exc, PapermillExecutionError):
        source = "\n".join("    " + line for line in exc.source.splitlines())
        return NotebookFailed(
            f"notebook {name} failed in cell {exc.cell_index} (In [{exc.exec_count}]) with {exc.ename}: {exc.evalue}\n"
            f"  failing cell:\n{source}\n  nothing in {out_dir} was replaced{where}")
    return NotebookFailed(f"notebook {name} could not be run ({type(exc).__name__}: {str(exc).strip()[:500]}); "
                          f"nothing in {out_dir} was replaced{where}")


def _move_into_place(staging: Path, out_dir: Path, run_name: str) -> None:
    """Rename the staged files over the old ones: the run folder first, results.md last."""
    new_run = staging / "runs" / run_name
    final_run = out_dir / "runs" / run_name
    final_run.parent.mkdir(parents=True, exist_ok=True)
    if final_run.exists():
        os.replace(final_run, staging / "replaced-run")  # removed with the staging folder
    os.replace(new_run, final_run)
    for sub in ("figures", "notebooks", "reports", EXPERIMENTS):
        for path in sorted((staging / sub).glob("*")):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
            os.replace(path, out_dir / sub / path.name)
    for name in (OUTPUT_PNG, RESULTS):
        if (staging / name).exists():
            os.replace(staging / name, out_dir / name)


def run_report(out_dir: str | os.PathLike = "outputs", params: dict | None = None, smoke: bool = False,
               data_root: str | os.PathLike | None = None, download: bool | None = None, verify: bool = True,
               notebooks_dir: str | os.PathLike | None = None, kernel_name: str = "python3", reuse: bool = True,
               experiments: bool = True, log=print) -> ReportResult:
    """Execute the numbered notebooks in order; write notebooks, HTML, figures and results.md under `out_dir`.

    `params` are notebook parameters by name (EPOCHS, LR, RECIPE, ...; case-insensitive), each passed
    to the notebooks that declare it. Unknown names, a bad training configuration, a missing
    dataset and a run folder in RUNS that does not exist are refused before any notebook starts.
    `download` (default: not in smoke mode) fetches a missing dataset first. With `reuse`, a run
    already in `out_dir/runs/` with exactly this configuration, finished, is analysed again instead
    of being trained again (notebook 02's REUSE), and so is every finished run of notebooks 04 and 05.
    `experiments=False` runs notebooks 01-03 only: the experiments take hours on a CPU.
    """
    from . import data as D
    from .training import finished_run_matches, resolve_device

    started = time.perf_counter()
    out_dir = Path(out_dir).expanduser().resolve()
    log = log or (lambda *_: None)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else project_dir() / "notebooks"
    notebooks = [n for n in NOTEBOOKS if experiments or n not in EXPERIMENT_NOTEBOOKS]
    declared = {name: notebook_parameters(notebooks_dir / name) for name in notebooks}
    for name, names in declared.items():  # what the report sets must reach every notebook, SMOKE above all
        missing = [p for p in NOTEBOOK_REQUIRED if p not in names]
        if missing:
            raise CifarError(f"notebook {name} does not declare {', '.join(missing)} in its parameters cell "
                             f"(papermill could not read it: keep each parameter a one-line NAME = value, no '=' in comments)")
    params = _normalise_params(dict(params or {}), declared)
    smoke = bool(params.pop("SMOKE", smoke) or smoke)
    root = D.resolve_root(params.pop("DATA_ROOT", None) or data_root).expanduser().resolve()

    # Everything the notebooks will do with the parameters, checked now rather than minutes in.
    recipe_default = _literal_default(declared["02_training.ipynb"].get("RECIPE")) or "seed"
    recipe = params.get("RECIPE", recipe_default)
    config = training_config(recipe, smoke, **{field: params[name] for name, field in TRAIN_PARAMETERS.items() if name in params})
    resolve_device(config.device)
    if experiments:
        _check_experiment_parameters(params, smoke)
    run_name = params.get("RUN_NAME") or default_run_name(recipe, config, smoke)
    if not isinstance(run_name, str) or not run_name or Path(run_name).name != run_name or run_name.startswith("."):
        raise ConfigError(f"RUN_NAME must be a plain folder name, got {run_name!r}")
    runs_dir = out_dir / "runs"
    if "RUNS" in params:  # the run trained now (it does not exist yet), then the ones asked for
        asked = params.pop("RUNS") or []
        asked = [asked] if isinstance(asked, (str, os.PathLike)) else list(asked)
        compare = resolve_runs([r for r in asked if Path(str(r)).name != run_name], runs_dir)
    else:  # the run trained now, then every other run already present
        compare = [p for p in list_runs(runs_dir) if p.name != run_name]
    _check_dataset(root, download=(not smoke) if download is None else download, verify=verify)

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-staging-", dir=out_dir))
    reuse = bool(params.pop("REUSE", reuse))
    if reuse and finished_run_matches(config, runs_dir / run_name):
        # The notebook sees the finished run in its staging folder and loads it instead of training.
        shutil.copytree(runs_dir / run_name, staging / "runs" / run_name)
        log(f"reusing the finished run {runs_dir / run_name} (same configuration); --retrain trains it again")
    common = {"SMOKE": smoke, "DATA_ROOT": str(root), "OUTPUT_DIR": str(staging), "VERIFY_DATA": False}
    specific = {"02_training.ipynb": {"RUN_NAME": run_name, "RUNS_DIR": str(staging / "runs"), "REUSE": reuse},
                "03_results_analysis.ipynb": {"RUNS": [str(staging / "runs" / run_name)] + [str(p) for p in compare]},
                **{name: {"RUNS_DIR": str(runs_dir), "REUSE": reuse} for name in EXPERIMENT_NOTEBOOKS}}
    library_parent = str(Path(__file__).resolve().parent.parent)
    # The kernels inherit this environment: they import this very library, whether or not it is
    # installed there, and their SMOKE default agrees with the parameter passed to them.
    kernel_env = {"PYTHONPATH": os.pathsep.join(p for p in (library_parent, os.environ.get("PYTHONPATH")) if p),
                  SMOKE_ENV: "1" if smoke else "0"}
    saved_env = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    try:
        import papermill
        from nbconvert import HTMLExporter

        exporter = HTMLExporter()
        for i, name in enumerate(notebooks, 1):
            values = {k: v for k, v in {**common, **params, **specific.get(name, {})}.items() if k in declared[name]}
            executed = staging / "notebooks" / name
            executed.parent.mkdir(parents=True, exist_ok=True)
            shown = {k: v for k, v in values.items() if k in params}
            log(f"[{i}/{len(notebooks)}] {name}" + (f" ({', '.join(f'{k}={v!r}' for k, v in shown.items())})" if shown else ""))
            t0 = time.perf_counter()
            try:
                papermill.execute_notebook(str(notebooks_dir / name), str(executed), parameters=values,
                                           kernel_name=kernel_name, progress_bar=False, cwd=str(Path.cwd()))
            except Exception as exc:  # papermill raises many types; each becomes one clear error
                failed_copy = None
                if executed.is_file():
                    failed_copy = out_dir / "notebooks" / (Path(name).stem + ".failed.ipynb")
                    failed_copy.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(executed, failed_copy)
                raise _failure(name, exc, failed_copy, out_dir) from None
            body, _ = exporter.from_filename(str(executed))
            atomic.write_text(staging / "reports" / (Path(name).stem + ".html"), body)
            log(f"      done in {time.perf_counter() - t0:.1f} s")
        seconds = time.perf_counter() - started
        results_text = results_markdown(staging / "runs" / run_name, [staging / "runs" / run_name, *compare],
                                        seconds=seconds, smoke=smoke, experiments=staging / EXPERIMENTS)
        atomic.write_text(staging / RESULTS, results_text)
        _move_into_place(staging, out_dir, run_name)
        for name in notebooks:  # a later success supersedes an earlier failure
            (out_dir / "notebooks" / (Path(name).stem + ".failed.ipynb")).unlink(missing_ok=True)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(staging, ignore_errors=True)
    result = ReportResult(out_dir=out_dir, run_dir=out_dir / "runs" / run_name,
                          notebooks=[out_dir / "notebooks" / n for n in notebooks],
                          html=[out_dir / "reports" / (Path(n).stem + ".html") for n in notebooks],
                          figures=sorted((out_dir / "figures").glob("*.png")), results=out_dir / RESULTS,
                          seconds=time.perf_counter() - started)
    log(f"report written to {out_dir} in {result.seconds:.1f} s: {RESULTS}, {OUTPUT_PNG}, notebooks/, reports/, "
        f"figures/ and runs/{run_name}/")
    return result


def results_markdown(run_dir: Path, compare: list[Path], seconds: float | None = None, smoke: bool = False,
                     experiments: Path | None = None) -> str:
    """results.md: the trained run's seed-format table, its test result, the comparison, the
    experiments' sections (`experiments/*.md`, in notebook order), provenance."""
    from . import runs

    summary = run_summary(run_dir)
    config = runs.read_json(run_dir / runs.CONFIG)
    metrics = runs.read_json(run_dir / runs.METRICS)
    prov = metrics.get("provenance") or config.get("provenance") or {}
    history = runs.read_history(run_dir / runs.HISTORY)
    lines = [f"# Results: {run_dir.name}", ""]
    if smoke:
        lines += ["> Smoke run: a small subset for one epoch; the numbers only show that the pipeline works.", ""]
    lines += [f"Model `{config['model']}`, optimizer {config['optimizer']} at lr {config['lr']:g}, batch size "
              f"{config['batch_size']}, augmentation {config['augment']}, epochs {config['epochs']}, seed {config['seed']}.", "",
              "## Per-epoch history", "", runs.history_table(history), "",
              "## Test set", "",
              f"Test accuracy **{summary['Test accuracy']}**, test loss {summary['Test loss']} "
              f"(on {summary['Test images']} test images).", "",
              "## All runs", "", markdown_table(comparison_frame(compare)), "",
              f"## Provenance of {run_dir.name}", "",
              "| Item | Value |", "|---|---|"]
    items = [("git commit", prov.get("git_commit")), ("torch", prov.get("torch")), ("python", prov.get("python")),
             ("device", f"{prov.get('device')} ({prov.get('device_name')})"),
             ("CPU", f"{prov['cpu']} (ISA class {prov.get('cpu_isa')}, {prov.get('threads')} threads)" if prov.get("cpu") else None),
             ("precision", prov.get("precision")),
             ("date (UTC)", prov.get("date")), ("seed", config.get("seed")),
             ("training wall time", f"{metrics.get('seconds', float('nan')):.1f} s"),
             ("report wall time", f"{seconds:.1f} s" if seconds is not None else None),
             ("data", prov.get("data_root"))]
    lines += [f"| {k} | {v} |" for k, v in items if v is not None]
    for section in sorted(Path(experiments).glob("*.md")) if experiments else []:
        lines += ["", section.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"
