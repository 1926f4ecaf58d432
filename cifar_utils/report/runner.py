"""The report: execute the numbered notebooks with papermill, render them as HTML, write results.md.

    python -m cifar_utils report                 # the full report into outputs/
    python -m cifar_utils report --smoke         # seconds: a 1000-image subset, one epoch

What it writes under the output folder (default `outputs/`):

    index.html             the landing page: the answers computed from the records, every report, the figures
    experiments/NN_findings.json   notebooks 04-07's answers, machine-readable (analysis/headline_records.py)
    ../README.md           its headlines block only, from the same records (a full report into outputs/ only)
    notebooks/<nb>.ipynb   the executed notebooks        reports/<nb>.html   each to read: findings, no code
    reports/<nb>.code.html the same with its code        figures/*.png       every figure they show
    results.md             the summary, tables and provenance
    output.png             the training curves (seed's name)          runs/<name>/   the run notebook 02 trained
    runs/fast-val5k-seed0/ the fast model notebooks 03 and 06 analyse beside it: committed, reused (reference_runs.py)
    experiments/*.md       the sections of notebooks 04-07 (also in results.md); 06's accuracy table as .csv
    experiments/runs/<digest>/   the records of notebooks 04, 05 and 07's runs      experiments/studies.journal   05's study
    cache/corruptions/     notebook 06's corrupted test sets, made once and reused (not part of the report)

Everything is built in a staging folder inside the output folder and moved into place only after
every notebook has run and rendered, so a failure (a cell's error, a kernel that dies or runs past
--cell-timeout, an HTML export, Ctrl-C) leaves the previous report untouched. One report writes an
output folder at a time (a lock file, `.report.lock`); a second is refused, or waits with --wait. The experiments' runs
and study are the exception: they are written straight into experiments/runs/ and
experiments/studies.journal, so that an interrupted report keeps every run and trial it finished,
and the next one reuses them.

The notebooks' own settings live in notebook.py, their tables in tables.py, the HTML renderings in
render.py, the landing page and its summary in landing.py. Papermill and nbconvert are imported
only when a report run_files.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import ablation as A
from ..analysis import architecture_comparison as AR
from ..analysis import corruptions as CR
from ..analysis import experiments as E
from ..analysis import robustness as R
from ..core import data as D
from ..core.config import train_parameters, training_config
from ..core.evaluation import resolve_device
from ..errors import CifarError, ConfigError, DatasetError, ReportInterrupted, disk_error
from ..paths import OUTPUT_PNG, PYTHONPATH_ENV, SMOKE_ENV, TQDM_DISABLE_ENV, project_dir
from ..runs import atomic, locks, run_files
from ..runs import reference as REF
from ..runs.reuse import folder_made_elsewhere, holds_reusable_run, precision_census
from . import browser, headlines, landing
from .rendering import INDEX, PathDisplay, rendering_names, write_renderings
from .results_page import results_markdown

EXPERIMENT_NOTEBOOKS = ("04_augmentation_ablation.ipynb", "05_hyperparameter_search.ipynb")
ROBUSTNESS_NOTEBOOK = "06_robustness.ipynb"
ARCHITECTURES_NOTEBOOK = "07_architectures.ipynb"
# The notebooks that keep run records in the experiments' store (OUTPUT_DIR/experiments/runs).
RECORD_NOTEBOOKS = (*EXPERIMENT_NOTEBOOKS, ARCHITECTURES_NOTEBOOK)
NOTEBOOKS = (
    "01_data_exploration.ipynb",
    "02_training.ipynb",
    "03_results_analysis.ipynb",
    *EXPERIMENT_NOTEBOOKS,
    ROBUSTNESS_NOTEBOOK,
    ARCHITECTURES_NOTEBOOK,
)
# What `experiments=False` leaves out: hours of training (04, 05, 07) and 65 passes over the test set per model (06).
LONG_NOTEBOOKS = (*EXPERIMENT_NOTEBOOKS, ROBUSTNESS_NOTEBOOK, ARCHITECTURES_NOTEBOOK)
EXPERIMENTS = "experiments"  # the sections notebooks 04-07 write for results.md (OUTPUT_DIR/experiments/*.md)
CORRUPTION_CACHE = ("cache", "corruptions")  # under the output folder, outside the staging folder: kept between reports
RESULTS = "results.md"
LANDING_SCREENSHOT = "landing_page.png"  # under figures/: the landing page's first screen, as a reader sees it
# Notebook 06 in a full report corrupts the first 2,000 test images, not all 10,000: the fast net's 65 passes over
# 10,000 images take about 7 minutes of a 2-core CPU. The subset costs some precision: on the clean images it gave
# 92.70% against 93.14% on all 10,000 for the fast net, 79.65% against 79.75% for the seed CNN (bench/RESULTS.md).
# `-p TEST_IMAGES 10000` evaluates them all.
# Parameters every notebook must declare: the report sets them.
NOTEBOOK_REQUIRED = ("SMOKE", "DATA_ROOT", "VERIFY_DATA", "OUTPUT_DIR")
# Parameters the report sets itself; users choose them with the report's own options.
REPORT_OWNED = {
    "OUTPUT_DIR": "--out",
    "RUNS_DIR": "--out",
    "EXPERIMENT_RUNS_DIR": "--out",
    "VERIFY_DATA": "(the report verifies the data once)",
}


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
        raise CifarError(
            f"notebook {path.name} has no cell tagged 'parameters'; tag its first code cell after the imports"
        )
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
    html: list[Path] = field(default_factory=list)  # both renderings of each notebook
    index: Path | None = None
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
        raise ConfigError(
            f"unknown notebook parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the notebooks take: {', '.join(n for n in known if n not in REPORT_OWNED)}"
        )
    return normalised


def _check_experiment_parameters(params: dict, smoke: bool) -> None:
    """Notebooks 04-07's sizes and choices, refused now rather than after notebooks 01-03."""
    E.budget(
        smoke,
        params.get("EXPERIMENT_EPOCHS"),
        params.get("EXPERIMENT_WIDTHS"),
        params.get("EXPERIMENT_SUBSET"),
        params.get("EXPERIMENT_VAL_SIZE"),
        params.get("DEVICE"),
        params.get("PRECISION"),
        params.get("EXPERIMENT_BATCH_SIZE"),
    )
    A.check_arms(params.get("ARMS") or A.ARMS)
    AR.plan(
        smoke,
        params.get("BUDGETS"),
        params.get("SEEDS"),
        params.get("EXPERIMENT_SUBSET"),
        params.get("DEVICE"),
        params.get("PRECISION"),
    )
    A.seed_settings(smoke, params.get("N_SEEDS", "auto"), params.get("MAX_SEEDS"), params.get("PILOT_SEEDS"))
    E.search_settings(smoke, params.get("N_TRIALS"), params.get("TOP_K"), params.get("RETRAIN_SEEDS"))
    CR.requested(params.get("CORRUPTIONS"), params.get("SEVERITIES"))  # notebook 06's


def _check_dataset(root: Path, download: bool, verify: bool) -> None:
    folder = root / D.FOLDER
    if not folder.is_dir():
        if not download:
            raise DatasetError(
                f"CIFAR-10 not found: {folder} does not exist; point --data-root or ${D.DATA_ENV} at the "
                f"folder that holds {D.FOLDER}/ (the report checks this before running any notebook)"
            )
        D.load_cifar10(root, download=True, verify=verify)
    elif verify:
        D.verify_files(folder)


def _failure(
    name: str, exc: Exception, failed_copy: Path | None, out_dir: Path, cell_timeout: float | None = None
) -> NotebookFailed:
    from papermill.exceptions import PapermillExecutionError

    where = f"; the executed notebook is {failed_copy}" if failed_copy else ""
    if isinstance(exc, PapermillExecutionError):
        source = "\n".join("    " + line for line in exc.source.splitlines())
        return NotebookFailed(
            f"notebook {name} failed in cell {exc.cell_index} (In [{exc.exec_count}]) with {exc.ename}: {exc.evalue}\n"
            f"  failing cell:\n{source}\n  nothing in {out_dir} was replaced{where}"
        )
    kind = type(exc).__name__
    if kind == "CellTimeoutError":  # nbclient's; its own text repeats the cell
        return NotebookFailed(
            f"notebook {name} stopped: a cell ran longer than the {cell_timeout:g} s limit "
            f"(--cell-timeout); nothing in {out_dir} was replaced{where}"
        )
    if kind == "DeadKernelError":
        return NotebookFailed(
            f"notebook {name} stopped: its kernel died (out of memory, or a crash outside Python); "
            f"nothing in {out_dir} was replaced{where}"
        )
    return NotebookFailed(
        f"notebook {name} could not be run ({kind}: {str(exc).strip()[:500]}); nothing in {out_dir} was replaced{where}"
    )


def _execute(
    name: str,
    notebooks_dir: Path,
    staging: Path,
    out_dir: Path,
    values: dict,
    kernel_name: str,
    cell_timeout: float | None,
    display: PathDisplay,
) -> None:
    """Run one notebook into the staging folder and render it as HTML; every way that fails becomes one CifarError."""
    import papermill

    executed = staging / "notebooks" / name
    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(notebooks_dir / name),
            str(executed),
            parameters=values,
            kernel_name=kernel_name,
            progress_bar=False,
            cwd=str(Path.cwd()),
            execution_timeout=cell_timeout,
        )
    except KeyboardInterrupt:
        raise ReportInterrupted(
            f"report interrupted (Ctrl-C) in notebook {name}; nothing in {out_dir} was "
            f"replaced (the runs notebooks 04, 05 and 07 finished are kept, and reused next time)"
        ) from None
    except Exception as exc:  # papermill raises many types; each becomes one clear error
        failed_copy = None
        if executed.is_file():
            failed_copy = out_dir / "notebooks" / (Path(name).stem + ".failed.ipynb")
            failed_copy.parent.mkdir(parents=True, exist_ok=True)
            os.replace(executed, failed_copy)
        raise _failure(name, exc, failed_copy, out_dir, cell_timeout) from None
    try:
        write_renderings(executed, staging / "reports", display)
    except KeyboardInterrupt:
        raise ReportInterrupted(
            f"report interrupted (Ctrl-C) while rendering {name} as HTML; nothing in {out_dir} was replaced"
        ) from None
    except Exception as exc:  # nbconvert's templates and filters fail in many ways
        raise NotebookFailed(
            f"notebook {name} ran, but could not be rendered as HTML ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]}); nothing in {out_dir} was replaced"
        ) from None


def _move_into_place(staging: Path, out_dir: Path, run_name: str, superseded: tuple[str, ...] = ()) -> None:
    """Rename the staged files over the old ones: the run folder first, results.md last. Old figures with a
    prefix in `superseded` that this report did not make again (a run since deleted or renamed) are removed."""
    final_run = out_dir / "runs" / run_name
    try:
        final_run.parent.mkdir(parents=True, exist_ok=True)
        atomic.replace_folder(staging / "runs" / run_name, final_run, trash=staging / "replaced-run")
        made = {p.name for p in (staging / "figures").glob("*.png")}
        for old in (out_dir / "figures").glob("*.png"):
            if old.name.startswith(superseded) and old.name not in made:
                old.unlink()
        for sub in ("figures", "notebooks", "reports", EXPERIMENTS):
            for path in sorted((staging / sub).glob("*")):
                (out_dir / sub).mkdir(parents=True, exist_ok=True)
                os.replace(path, out_dir / sub / path.name)
        for name in (OUTPUT_PNG, INDEX, RESULTS):
            if (staging / name).exists():
                os.replace(staging / name, out_dir / name)
    except OSError as exc:
        raise disk_error(exc.filename or out_dir, exc, "move the new report into place at") from None


def _new_staging(out_dir: Path) -> Path:
    """The staging folder of this report; called holding the report's lock, so any other is a dead report's."""
    try:
        for old in out_dir.glob(".report-staging-*"):
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f".report-staging-pid{os.getpid()}-", dir=out_dir))
    except OSError as exc:
        raise disk_error(out_dir, exc, "write in") from None


@contextlib.contextmanager
def _kernel_environment(smoke: bool):
    """The kernels inherit this environment: they import this very library, whether or not it is installed
    there, and their SMOKE default agrees with the parameter passed to them."""
    library_parent = str(Path(__file__).resolve().parent.parent)
    kernel_env = {
        PYTHONPATH_ENV: os.pathsep.join(p for p in (library_parent, os.environ.get(PYTHONPATH_ENV)) if p),
        SMOKE_ENV: "1" if smoke else "0",
        # A rendered page is read, not watched: no progress bars (tqdm reads TQDM_* as defaults).
        TQDM_DISABLE_ENV: "1",
    }
    saved_env = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_report(
    out_dir: str | os.PathLike = "outputs",
    params: dict | None = None,
    smoke: bool = False,
    data_root: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
    notebooks_dir: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    reuse: bool = True,
    experiments: bool = True,
    wait: bool = False,
    cell_timeout: float | None = None,
    log=print,
) -> ReportResult:
    """Execute the numbered notebooks in order; write notebooks, HTML, figures and results.md under `out_dir`.

    `params` are notebook parameters by name (EPOCHS, LR, RECIPE, ...; case-insensitive), each passed
    to the notebooks that declare it. Unknown names, a bad training configuration, a missing
    dataset and a run folder in RUNS that does not exist are refused before any notebook starts.
    `download` (default: not in smoke mode) fetches a missing dataset first. With `reuse`, a run
    already in `out_dir/runs/` with exactly this configuration, finished, is analysed again instead
    of being trained again (notebook 02's REUSE), and so is every finished run of notebooks 04, 05 and 07
    and the committed fast model (reference_runs.py), which a full report otherwise trains first.
    `experiments=False` runs notebooks 01-03 only: the experiments take hours on a CPU, and notebook 06
    evaluates every run on 65 corrupted copies of the test set (of its first R.REPORT_TEST_IMAGES, unless
    TEST_IMAGES says otherwise).
    One report writes `out_dir` at a time, and nothing else writes its run folder meanwhile: another
    writer is refused with its PID and command, or with `wait` waited for. `cell_timeout` (seconds)
    stops a notebook whose cell runs longer.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).expanduser().resolve()
    log = log or (lambda *_: None)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else project_dir() / "notebooks"
    notebooks = [n for n in NOTEBOOKS if experiments or n not in LONG_NOTEBOOKS]
    declared = {name: notebook_parameters(notebooks_dir / name) for name in notebooks}
    for name, names in declared.items():  # what the report sets must reach every notebook, SMOKE above all
        missing = [p for p in NOTEBOOK_REQUIRED if p not in names]
        if missing:
            raise CifarError(
                f"notebook {name} does not declare {', '.join(missing)} in its parameters cell "
                f"(papermill could not read it: keep each parameter a one-line NAME = value, no '=' in comments)"
            )
    params = _normalise_params(dict(params or {}), declared)
    smoke = bool(params.pop("SMOKE", smoke) or smoke)
    root = D.data_root(params.pop("DATA_ROOT", None) or data_root).expanduser().resolve()

    # Everything the notebooks will do with the parameters, checked now rather than minutes in.
    recipe_default = _literal_default(declared["02_training.ipynb"].get("RECIPE")) or "seed"
    recipe = params.get("RECIPE", recipe_default)
    config = training_config(
        recipe, smoke, **{field: params[name] for name, field in train_parameters().items() if name in params}
    )
    resolve_device(config.device)
    if experiments:
        _check_experiment_parameters(params, smoke)
    run_name = params.get("RUN_NAME") or run_files.default_run_name(recipe, config, smoke)
    if not isinstance(run_name, str) or not run_name or Path(run_name).name != run_name or run_name.startswith("."):
        raise ConfigError(f"RUN_NAME must be a plain folder name, got {run_name!r}")
    runs_dir = out_dir / "runs"
    compare = None  # None: the run trained now, then every other run present once the reference runs are
    if "RUNS" in params:  # the run trained now (it does not exist yet), then the ones asked for
        asked = params.pop("RUNS") or []
        asked = [asked] if isinstance(asked, (str, os.PathLike)) else list(asked)
        compare = run_files.resolve_runs([r for r in asked if Path(str(r)).name != run_name], runs_dir)
    _check_dataset(root, download=(not smoke) if download is None else download, verify=verify)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(out_dir, exc, "create") from None

    with (
        locks.held(out_dir / locks.REPORT_LOCK, f"report folder {out_dir}", wait, log),
        locks.held(locks.beside(runs_dir / run_name), f"run folder {runs_dir / run_name}", wait, log),
    ):
        staging = _new_staging(out_dir)
        try:
            reuse = bool(params.pop("REUSE", reuse))
            if experiments and not smoke:
                log(
                    f"[0/{len(notebooks)}] the reference runs the report analyses beside its own: "
                    f"{', '.join(REF.REFERENCE_RUNS)}"
                )
                t0 = time.perf_counter()
                REF.ensure_reference_runs(
                    runs_dir, data_root=root, reuse=reuse, skip=(run_name,), log=lambda m: log(f"      {m}")
                )
                log(f"      done in {time.perf_counter() - t0:.1f} s")
            if compare is None:
                compare = [p for p in run_files.list_runs(runs_dir) if p.name != run_name]
            elsewhere = (
                precision_census(
                    [*run_files.list_runs(runs_dir), *run_files.list_runs(E.runs_store(out_dir))],
                    resolve_device(config.device),
                )
                if reuse and not smoke
                else None
            )
            if elsewhere:
                log(elsewhere)
            if reuse and holds_reusable_run(config, runs_dir / run_name):
                # The notebook sees the finished run in its staging folder and loads it instead of training.
                shutil.copytree(runs_dir / run_name, staging / "runs" / run_name)
                made = folder_made_elsewhere(runs_dir / run_name, resolve_device(config.device))
                log(
                    f"reusing the finished run {runs_dir / run_name} ({made or 'same configuration'}); --retrain trains it again"
                )
            common = {"SMOKE": smoke, "DATA_ROOT": str(root), "OUTPUT_DIR": str(staging), "VERIFY_DATA": False}
            analysed = [str(staging / "runs" / run_name)] + [str(p) for p in compare]
            specific = {
                "02_training.ipynb": {"RUN_NAME": run_name, "RUNS_DIR": str(staging / "runs"), "REUSE": reuse},
                "03_results_analysis.ipynb": {"RUNS": analysed, "EXPERIMENT_RUNS_DIR": str(E.runs_store(out_dir))},
                ROBUSTNESS_NOTEBOOK: {
                    "RUNS": analysed,
                    "CACHE_DIR": str(out_dir.joinpath(*CORRUPTION_CACHE)),
                    "TEST_IMAGES": params.get("TEST_IMAGES") or (None if smoke else R.REPORT_TEST_IMAGES),
                },
                **{name: {"RUNS_DIR": str(E.runs_store(out_dir)), "RERUN": not reuse} for name in RECORD_NOTEBOOKS},
            }
            display = PathDisplay(out_dir, staging, root)  # how the renderings show the paths passed here
            with _kernel_environment(smoke):
                for i, name in enumerate(notebooks, 1):
                    values = {
                        k: v for k, v in {**common, **params, **specific.get(name, {})}.items() if k in declared[name]
                    }
                    shown = {k: v for k, v in values.items() if k in params}
                    log(
                        f"[{i}/{len(notebooks)}] {name}"
                        + (f" ({', '.join(f'{k}={v!r}' for k, v in shown.items())})" if shown else "")
                    )
                    t0 = time.perf_counter()
                    _execute(name, notebooks_dir, staging, out_dir, values, kernel_name, cell_timeout, display)
                    log(f"      done in {time.perf_counter() - t0:.1f} s")
            seconds = time.perf_counter() - started
            # The summary covers every run present (the experiments' too), not only those compared in notebook 03.
            present = [
                staging / "runs" / run_name,
                *(p for p in run_files.list_runs(runs_dir) if p.name != run_name),
                *run_files.list_runs(E.runs_store(out_dir)),
            ]
            # Notebooks 04-07's findings: this report's, or with the experiments skipped, the last full report's.
            findings_dir = staging if experiments else out_dir
            summary = landing.executive_summary(landing.configurations(present), smoke=smoke, findings_dir=findings_dir)
            summary = landing.with_existing_links(summary, [staging, out_dir], made=(RESULTS,))
            superseded = tuple(Path(n).stem.split("_")[0] + "_" for n in notebooks)  # figure prefixes made anew
            landing.write_index(staging, summary, NOTEBOOKS, [staging, out_dir], superseded)
            results_text = results_markdown(
                staging / "runs" / run_name,
                [staging / "runs" / run_name, *compare],
                seconds=seconds,
                smoke=smoke,
                # skipped: the sections the last full report wrote are still the findings
                experiments=staging / EXPERIMENTS if experiments else out_dir / EXPERIMENTS,
                overview=summary,
                display=display,
                figures=staging / "figures",
                reused_elsewhere=elsewhere,
            )
            atomic.write_text(staging / RESULTS, results_text)
            with atomic.interrupts_deferred():  # a Ctrl-C now would leave half the old report, half the new
                _move_into_place(staging, out_dir, run_name, superseded)
            for name in notebooks:  # a later success supersedes an earlier failure
                (out_dir / "notebooks" / (Path(name).stem + ".failed.ipynb")).unlink(missing_ok=True)
            # The README's headlines block is generated from the same records as index.html, and the report is the
            # one writer of generated results: a full report into the project's own outputs/ rewrites that block
            # (and nothing else of the README); a smoke report, or one into another folder, leaves it alone.
            readme = project_dir() / headlines.README
            if not smoke and out_dir == (project_dir() / "outputs").resolve() and readme.is_file():
                try:
                    if headlines.write_readme(readme, out_dir):
                        log(f"rewrote the headlines block of {readme}")
                except CifarError as exc:  # the report itself is in place; only the README is left as it was
                    log(f"{readme} left as it was: {exc}")
                # The committed picture of the landing page follows the page (make screenshot does it by hand).
                log(browser.refresh_landing_screenshot(out_dir / INDEX, out_dir / "figures" / LANDING_SCREENSHOT))
        except OSError as exc:  # copying the reused run, making the staging folders
            raise disk_error(exc.filename or out_dir, exc, "write") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    result = ReportResult(
        out_dir=out_dir,
        run_dir=out_dir / "runs" / run_name,
        notebooks=[out_dir / "notebooks" / n for n in notebooks],
        html=[out_dir / "reports" / f for n in notebooks for f in rendering_names(Path(n).stem)],
        figures=sorted((out_dir / "figures").glob("*.png")),
        results=out_dir / RESULTS,
        index=out_dir / INDEX,
        seconds=time.perf_counter() - started,
    )
    log(
        f"report written to {out_dir} in {result.seconds:.1f} s: {INDEX}, {RESULTS}, {OUTPUT_PNG}, notebooks/, reports/, "
        f"figures/ and runs/{run_name}/"
    )
    return result
