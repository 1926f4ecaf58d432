"""The report command: bad input refused up front, failures reported and harmless, a smoke run end to end."""

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cifar_utils import notebook as NB
from cifar_utils.analysis import headline_records as H
from cifar_utils.analysis import robustness, tables
from cifar_utils.cli import main
from cifar_utils.core import metrics as M
from cifar_utils.errors import CifarError, ConfigError, DatasetError
from cifar_utils.report import landing, rendering, results_page
from cifar_utils.report import runner as R
from cifar_utils.runs import run_files

PROJECT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = PROJECT / "notebooks"


# ----------------------------------------------------------------------------- the committed notebooks


def _hook(hook_id: str) -> dict:
    """A hook of .pre-commit-config.yaml: the tests run the tools exactly as the commit hook does."""
    import yaml  # installed with pre-commit and jupytext (the dev extra)

    config = yaml.safe_load((PROJECT / ".pre-commit-config.yaml").read_text())
    return next(h for repo in config["repos"] for h in repo["hooks"] if h["id"] == hook_id)


def _nbstripout_verify(*paths: Path) -> subprocess.CompletedProcess:
    hook = _hook("nbstripout")
    assert (
        hook["entry"].split()[-1] == "--" and 'exec nbstripout "$@"' in hook["entry"]
    )  # the arguments go to nbstripout
    tool = Path(sys.executable).parent / "nbstripout"  # this environment's, as the hook finds it
    return subprocess.run(
        [str(tool), "--verify", *hook.get("args", []), *map(str, paths)], capture_output=True, text=True, cwd=PROJECT
    )


@pytest.fixture(scope="module")
def unstripped() -> str:
    """nbstripout's list of the committed notebooks it would change (one run for all of them)."""
    return _nbstripout_verify(*(NOTEBOOKS_DIR / n for n in R.NOTEBOOKS)).stdout


@pytest.mark.parametrize("name", R.NOTEBOOKS)
def test_notebooks_are_committed_clean_with_parameters_after_imports(name, unstripped):
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    assert name not in unstripped, f"strip it: pre-commit run nbstripout --files notebooks/{name}\n{unstripped}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "import" in code[0].source and "parameters" in code[1].metadata.get("tags", [])
    declared = R.notebook_parameters(NOTEBOOKS_DIR / name)
    assert set(R.NOTEBOOK_REQUIRED) <= set(declared)
    assert not any(cell.outputs or cell.execution_count for cell in code), "executed copies belong in outputs/"


def test_nbstripout_check_fails_on_outputs_and_spares_keep_output_cells(tmp_path):
    """The check above can fail: an output left in a cell is caught, unless the cell is tagged keep_output."""
    nb = nbformat.read(NOTEBOOKS_DIR / R.NOTEBOOKS[0], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="left behind\n")]
    nbformat.write(nb, tmp_path / "executed.ipynb")
    assert _nbstripout_verify(tmp_path / "executed.ipynb").returncode != 0
    code[-1].metadata["tags"] = ["keep_output"]
    nbformat.write(nb, tmp_path / "kept.ipynb")
    assert _nbstripout_verify(tmp_path / "kept.ipynb").returncode == 0


@pytest.mark.parametrize("name", R.NOTEBOOKS)
def test_cells_whose_output_nbval_checks_keep_it_when_stripped(name):
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    untagged = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and "# NBVAL_CHECK_OUTPUT" in c.source
        and "keep_output" not in c.metadata.get("tags", [])
    ]
    assert not untagged, (
        f"cells {untagged} of {name} are checked by nbval (# NBVAL_CHECK_OUTPUT) but nbstripout "
        f"would strip their reference output: tag them keep_output"
    )


@pytest.mark.parametrize("name", R.NOTEBOOKS)
def test_notebooks_and_their_jupytext_pairs_agree(name):
    import jupytext

    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    pair = NOTEBOOKS_DIR / (Path(name).stem + ".py")
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"pair it: jupytext --set-formats ipynb,py:percent notebooks/{name}"
    )
    assert pair.is_file(), f"create its pair: jupytext --sync notebooks/{name}"
    text = jupytext.read(pair)
    cells = lambda n: [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in n.cells]  # noqa: E731
    assert cells(text) == cells(nb), f"sync them: jupytext --sync notebooks/{name} (or pre-commit run --all-files)"


def test_pytest_collects_the_notebooks_not_their_text_pairs():
    """Even told to collect every .py file, pytest must not import the pairs (that would run a notebook's code)."""
    env = {k: v for k, v in os.environ.items() if k != "CIFAR10_ROOT"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "python_files=*.py",
            "notebooks/",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
    )
    items = [line for line in done.stdout.splitlines() if "::" in line]
    assert done.returncode == 0, done.stdout + done.stderr
    assert items and all(line.split("::")[0].endswith(".ipynb") for line in items), items
    assert {line.split("::")[0] for line in items} == {f"notebooks/{n}" for n in R.NOTEBOOKS}


def test_a_notebook_stops_at_its_first_failed_cell_under_nbval(tmp_path):
    """The cells after a failure are skipped, not run: one hung cell costs one timeout, not one per cell."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "conftest.py").write_text((NOTEBOOKS_DIR / "conftest.py").read_text())
    marker = tmp_path / "ran-after-the-failure"
    nb = new_notebook(
        cells=[
            new_code_cell("x = 1"),
            new_code_cell("raise RuntimeError('this cell fails')"),
            new_code_cell(f"open({str(marker)!r}, 'w').close()"),
            new_code_cell("y = 2"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "stops.ipynb")
    other = new_notebook(cells=[new_code_cell("z = 3")], metadata=nb.metadata)
    nbformat.write(other, folder / "other.ipynb")
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)  # the conftest skips notebooks without it
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rs",
            "--nbval-lax",
            "-o",
            "addopts=",
            "-o",
            "testpaths=",
            str(folder),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CIFAR10_ROOT": str(tmp_path / "data")},
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in summary and "2 passed" in summary and "2 skipped" in summary, done.stdout
    assert "an earlier cell of this notebook failed" in done.stdout
    assert not marker.exists(), "a cell after the failed one ran"


def test_training_notebook_declares_every_training_knob():
    """Notebook 02 offers every TrainConfig field, capitalised; a new knob in config.py must appear there."""
    declared = set(R.notebook_parameters(NOTEBOOKS_DIR / "02_training.ipynb"))
    missing = (set(NB.train_parameters()) | {"RECIPE", "RUN_NAME", "RUNS_DIR"}) - declared
    assert not missing, f"add to notebook 02's parameters cell: {', '.join(sorted(missing))} (None: the recipe's value)"


@pytest.mark.real_data
def test_exploration_tables_show_the_known_split_and_constants(real_data):
    """What notebook 01 prints for the real data: 4500/500 per class and CIFAR-10's channel means."""
    from cifar_utils.core.data import split_dataset

    split = split_dataset(real_data, val_size=5000)
    counts = tables.counts_table(M.split_counts(split, real_data.test_labels), real_data.classes)
    assert counts.loc["total"].tolist() == [45000, 5000, 10000]
    assert counts.drop("total").values.tolist() == [[4500, 500, 1000]] * 10
    constants = tables.constants_table(*M.histogram_stats(M.channel_histograms(split.train_images)))
    assert constants["mean (0-255)"].tolist() == pytest.approx([125.3389, 122.9732, 113.9130], abs=1e-4)
    assert constants["std (0-255)"].tolist() == pytest.approx([62.9935, 62.1091, 66.7134], abs=1e-4)


@pytest.mark.parametrize(
    "text,value",
    [
        ("5", 5),
        ("0.002", 0.002),
        ("True", True),
        ("None", None),
        ("['a', 'b']", ["a", "b"]),
        ("seed", "seed"),
        ("flip+translate", "flip+translate"),
    ],
)
def test_parameter_values_are_read_as_papermill_does(text, value):
    assert R.parse_value(text) == value


def test_smoke_default_follows_cifar_smoke_then_ci(monkeypatch):
    monkeypatch.delenv("CIFAR_SMOKE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert NB.smoke_default() is False
    monkeypatch.setenv("CI", "true")
    assert NB.smoke_default() is True
    monkeypatch.setenv("CIFAR_SMOKE", "0")
    assert NB.smoke_default() is False
    monkeypatch.delenv("CI")
    monkeypatch.setenv("CIFAR_SMOKE", "1")
    assert NB.smoke_default() is True


# ----------------------------------------------------------------------------- bad input: refused before any notebook


@pytest.fixture
def no_download(monkeypatch):
    import cifar_utils.core.data as D

    monkeypatch.setattr(D, "_download", lambda root: (_ for _ in ()).throw(AssertionError("tests never download")))


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "EPOCHZ", "2"], "unknown notebook parameter 'EPOCHZ'; the notebooks take: "),
        (["-p", "OUTPUT_DIR", "/tmp/x"], "parameter OUTPUT_DIR is set by the report itself; use --out"),
        (["-p", "epochs", "0"], "epochs must be a positive whole number"),
        (["-p", "RECIPE", "nope"], "unknown recipe 'nope'"),
        (["-p", "RUNS", "['no-such-run']"], "run folder no-such-run does not exist"),
        (["-p", "RUN_NAME", "../escape"], "RUN_NAME must be a plain folder name"),
        (["-p", "N_SEEDS", "1"], "N_SEEDS must be 'auto' or a whole number of at least 2"),
        (["-p", "PILOT_SEEDS", "5", "-p", "MAX_SEEDS", "3"], "2 <= PILOT_SEEDS <= MAX_SEEDS"),
        (["-p", "N_TRIALS", "0"], "N_TRIALS must be a whole number of at least 1"),
        (["-p", "ARMS", "['augment none', 'rotate']"], "unknown arm 'rotate' in ARMS"),
        (["-p", "EXPERIMENT_WIDTHS", "[8, 16]"], "EXPERIMENT_WIDTHS must be three positive whole numbers"),
        (["-p", "CORRUPTIONS", "['contrast', 'fog']"], "unknown corruption 'fog'; choose from: gaussian_noise"),
        (["-p", "SEVERITIES", "[1, 6]"], "severity must be one of (1, 2, 3, 4, 5), got 6"),
    ],
)
def test_bad_report_input_is_one_clear_error_before_any_notebook(args, message, tmp_path, capsys, synthetic_root):
    out = tmp_path / "out"
    code = main(["report", "--smoke", "--out", str(out), "--data-root", str(synthetic_root), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert not out.exists()  # nothing started, nothing written


def test_missing_dataset_is_named_before_any_notebook(tmp_path, no_download):
    with pytest.raises(DatasetError, match=r"CIFAR-10 not found: .*empty.*cifar-10-batches-py does not exist"):
        R.run_report(tmp_path / "out", smoke=True, data_root=tmp_path / "empty", log=None)
    assert not (tmp_path / "out").exists()


def test_unknown_parameters_are_all_listed():
    with pytest.raises(ConfigError, match="unknown notebook parameters 'A', 'B'"):
        R.run_report("unused", params={"A": 1, "B": 2}, smoke=True, log=None)


# ----------------------------------------------------------------------------- a failing notebook


def _fake_notebook(path: Path, *cells: str, params: str = "") -> None:
    params = new_code_cell("SMOKE = False\nDATA_ROOT = None\nVERIFY_DATA = True\nOUTPUT_DIR = None\n" + params)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_code_cell("import os"), params, *[new_code_cell(c) for c in cells]])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failing_notebook_stops_the_report_and_replaces_nothing(tmp_path, synthetic_root):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _fake_notebook(nbs / "01_data_exploration.ipynb", "x = 1", "raise RuntimeError('boom: the data looked wrong')")
    _fake_notebook(nbs / "02_training.ipynb", "raise AssertionError('never reached')")
    for name in R.NOTEBOOKS[2:]:
        _fake_notebook(nbs / name, "raise AssertionError('never reached')")
    out = tmp_path / "out"
    (out / "notebooks").mkdir(parents=True)
    (out / "results.md").write_text("the good report\n")
    (out / "notebooks" / "01_data_exploration.ipynb").write_text("{}\n")

    with pytest.raises(CifarError) as exc:
        R.run_report(out, smoke=True, data_root=synthetic_root, verify=False, notebooks_dir=nbs, log=None)
    message = str(exc.value)
    assert "notebook 01_data_exploration.ipynb failed in cell" in message
    assert "RuntimeError: boom: the data looked wrong" in message
    assert "raise RuntimeError('boom: the data looked wrong')" in message  # the failing cell's source
    assert (out / "results.md").read_text() == "the good report\n"
    assert (out / "notebooks" / "01_data_exploration.ipynb").read_text() == "{}\n"
    assert (out / "notebooks" / "01_data_exploration.failed.ipynb").is_file()
    assert not list(out.glob(".report-staging-*")) and not (out / "reports").exists()


# ----------------------------------------------------------------------------- end to end, with stand-in notebooks
# The real notebooks execute once per test run, under nbval (notebooks/conftest.py). The report's own
# work (parameters in, staging, HTML, figures, results.md, moving into place) is tested here with
# small notebooks that do what the real ones leave behind: a figure each, a trained run, notebook 03's
# analysis, the experiments' sections.

_FIGURE = (
    "%matplotlib inline\nimport matplotlib.pyplot as plt\nfrom pathlib import Path\n"
    "from cifar_utils.runs.atomic import save_figure\nfig = plt.figure(); plt.plot([0, 1], [1, 0])\n"
    "save_figure(fig, Path(OUTPUT_DIR) / 'figures' / '{name}.png'); fig"
)


def _stand_in_notebooks(folder: Path, synthetic_root: Path) -> Path:
    folder.mkdir()
    _fake_notebook(folder / "01_data_exploration.ipynb", _FIGURE.format(name="01_class_balance"))
    _fake_notebook(
        folder / "02_training.ipynb",
        "from pathlib import Path\nfrom cifar_utils.core.data import load_cifar10\n"
        "from cifar_utils.core.config import TrainConfig\nfrom cifar_utils.runs.training import fit\n"
        f"fit(TrainConfig(epochs=EPOCHS, batch_size=100, val_size=50), dataset=load_cifar10({str(synthetic_root)!r}, "
        "verify=False), run_dir=Path(RUNS_DIR) / RUN_NAME, progress=False, log=print, evaluate_test=not SMOKE)",
        _FIGURE.format(name="02_training_curves"),
        "from cifar_utils.runs.atomic import save_figure\nsave_figure(fig, Path(OUTPUT_DIR) / 'output.png')",
        params="RUN_NAME = None\nRUNS_DIR = None\nREUSE = True\nEPOCHS = 1",
    )
    _fake_notebook(
        folder / "03_results_analysis.ipynb",
        "from cifar_utils.runs import run_files\n"
        "run_files.write_analysis(RUNS[0], {'test_images': 1000, 'test_accuracy': 0.25, 'test_loss': 2.0})",
        _FIGURE.format(name="03_confusion_matrix"),
        params="RUNS = None",
    )
    for name in R.RECORD_NOTEBOOKS:
        stem = Path(name).stem
        _fake_notebook(
            folder / name,
            _FIGURE.format(name=stem),
            "from cifar_utils.runs.atomic import write_text\n"
            f"write_text(Path(OUTPUT_DIR) / 'experiments' / '{stem}.md', '## Section of {stem}\\n')",
            # the run records go straight to the output folder, not the staging one
            "assert Path(RUNS_DIR).parts[-2:] == ('experiments', 'runs') and 'staging' not in RUNS_DIR, RUNS_DIR\n"
            "assert RERUN is False, RERUN",
            params="RUNS_DIR = None\nRERUN = None",
        )
    # 06 gets the runs 03 gets, and a corruption cache outside the staging folder (it outlives the report).
    stem = Path(R.ROBUSTNESS_NOTEBOOK).stem
    _fake_notebook(
        folder / R.ROBUSTNESS_NOTEBOOK,
        _FIGURE.format(name=stem),
        "assert Path(RUNS[0]).name == 'seed-seed_cnn-seed0-smoke' and Path(RUNS[1]).name == 'earlier-run', RUNS\n"
        "assert '-staging-' not in CACHE_DIR and CACHE_DIR.endswith('cache/corruptions'), CACHE_DIR\n"
        "from cifar_utils.runs.atomic import write_text\n"
        f"write_text(Path(OUTPUT_DIR) / 'experiments' / '{stem}.md', '## Section of {stem}\\n')",
        params="RUNS = None\nCACHE_DIR = None",
    )
    return folder


@pytest.mark.slow
def test_report_writes_every_artifact_and_passes_parameters(tmp_path, synthetic_root):
    from cifar_utils.core.config import TrainConfig
    from cifar_utils.core.data import load_cifar10
    from cifar_utils.runs.training import fit

    nbs = _stand_in_notebooks(tmp_path / "nbs", synthetic_root)
    out = tmp_path / "out"
    # Another run already present: the comparison table must include it.
    fit(
        TrainConfig(epochs=1, batch_size=100, val_size=50, device="cpu", precision="fp32"),
        dataset=load_cifar10(synthetic_root, download=False, verify=False),
        run_dir=out / "runs" / "earlier-run",
        progress=False,
        log=lambda *_: None,
    )
    printed = []
    result = R.run_report(
        out,
        params={"epochs": 2},
        smoke=True,
        data_root=synthetic_root,
        verify=False,
        notebooks_dir=nbs,
        log=printed.append,
    )
    run_name = "seed-seed_cnn-seed0-smoke"
    assert result.run_dir == out.resolve() / "runs" / run_name
    assert printed[0] == f"[1/{len(R.NOTEBOOKS)}] 01_data_exploration.ipynb" and "(EPOCHS=2)" in printed[2]

    stems = [Path(n).stem for n in R.NOTEBOOKS]
    expected = [out / "results.md", out / "output.png", out / "index.html"]
    expected += [out / "notebooks" / f"{s}.ipynb" for s in stems] + [out / "reports" / f"{s}.html" for s in stems]
    expected += [out / "reports" / f"{s}.code.html" for s in stems]
    expected += [
        out / "figures" / f"{f}.png"
        for f in (
            "01_class_balance",
            "02_training_curves",
            "03_confusion_matrix",
            *(Path(n).stem for n in R.LONG_NOTEBOOKS),
        )
    ]
    expected += [out / "experiments" / f"{Path(n).stem}.md" for n in R.LONG_NOTEBOOKS]
    expected += [
        out / "runs" / run_name / f for f in ("config.json", "history.csv", "metrics.json", "model.pt", "analysis.json")
    ]
    for path in expected:
        assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty"
    assert not list(out.glob(".report-staging-*"))
    assert len(runs_history := (out / "runs" / run_name / "history.csv").read_text().splitlines()) == 3, runs_history
    assert "<img" in (out / "reports" / "01_data_exploration.html").read_text()
    for stem in stems:  # the staging folder, the output folder and the data root are all shown relative
        plain, coded = ((out / "reports" / f).read_text() for f in rendering.rendering_names(stem))
        assert str(tmp_path) not in plain and str(synthetic_root) not in plain and "report-staging" not in plain + coded
        assert (
            "jp-InputArea-editor" not in plain.split("<main>")[1] and "jp-InputArea-editor" in coded.split("<main>")[1]
        )
    index = (out / "index.html").read_text()
    assert all(f'href="reports/{f}"' in index for s in stems for f in rendering.rendering_names(s))
    assert 'src="figures/03_confusion_matrix.png"' in index and str(tmp_path) not in index

    results = (out / "results.md").read_text()
    summary = landing.with_existing_links(
        landing.executive_summary(
            landing.configurations([out / "runs" / run_name, out / "runs" / "earlier-run"]),
            smoke=True,
            findings_dir=out,
        ),
        [out],
    )
    block = "\n".join(results_page.summary_block(summary))
    assert results.split("\n\n")[:2] == [f"# Results: {run_name}", block]
    assert "- Best model, chosen on validation" in block
    assert all(f"<li>{html.escape(h.text)}" in index for h in summary)
    assert "| Epoch | Train Loss | Train Accuracy | Validation Loss | Validation Accuracy |" in results
    assert "| Run | Kind | Model |" in results and f"| {run_name} |" in results and "| earlier-run |" in results
    assert "on 1000 test images" in results and "git commit" in results and "report wall time" in results
    assert "| CPU |" in results and "| precision |" in results
    assert (
        results.index("## Section of 04_augmentation_ablation")
        < results.index("## Section of 05_hyperparameter_search")
        < results.index("## Section of 06_robustness")
        < results.index("## Section of 07_architectures")
    )


def _stand_in_01_and_02(nbs: Path, synthetic_root: Path) -> None:
    """01 does nothing; 02 leaves the finished run that results.md describes: one epoch on the synthetic data."""
    _fake_notebook(nbs / "01_data_exploration.ipynb", "x = 1")
    _fake_notebook(
        nbs / "02_training.ipynb",
        "from pathlib import Path\nfrom cifar_utils.core.data import load_cifar10\n"
        "from cifar_utils.core.config import TrainConfig\nfrom cifar_utils.runs.training import fit\n"
        f"fit(TrainConfig(epochs=1, batch_size=100, val_size=50), dataset=load_cifar10({str(synthetic_root)!r}, "
        "verify=False), run_dir=Path(RUNS_DIR) / RUN_NAME, progress=False, log=print)",
        params="RUN_NAME = None\nRUNS_DIR = None\nREUSE = True",
    )


@pytest.mark.slow
def test_skip_experiments_runs_notebooks_01_to_03_only(tmp_path, synthetic_root):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _stand_in_01_and_02(nbs, synthetic_root)
    _fake_notebook(nbs / "03_results_analysis.ipynb", "x = 1", params="RUNS = None")
    for name in R.LONG_NOTEBOOKS:
        _fake_notebook(nbs / name, "raise AssertionError('the experiments ran')")
    out = tmp_path / "out"
    result = R.run_report(
        out, smoke=True, data_root=synthetic_root, verify=False, notebooks_dir=nbs, experiments=False, log=None
    )
    assert [p.name for p in result.notebooks] == list(R.NOTEBOOKS[:3])
    assert (out / "notebooks" / "02_training.ipynb").is_file()
    assert not (out / "notebooks" / "04_augmentation_ablation.ipynb").exists()
    assert "| Epoch | Train Loss |" in (out / "results.md").read_text()
    assert "Augmentation ablation" not in (out / "results.md").read_text()


# ----------------------------------------------------------------------------- the renderings and the landing page

_PATHS = (
    "import sys\nfrom pathlib import Path\nprint('figures go to', Path(OUTPUT_DIR) / 'figures', 'and the data is in', DATA_ROOT)\n"
    "print('a progress bar in', sys.prefix, file=sys.stderr)"
)


def executed_stand_in(
    folder: Path, staging: Path, data_root: Path, name: str = "01_data_exploration.ipynb", *cells: str
) -> Path:
    """A stand-in notebook run by papermill as the report runs it: absolute paths in, outputs to a staging folder."""
    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    _fake_notebook(folder / name, *(cells or (_PATHS, _FIGURE.format(name=Path(name).stem.split("_")[0] + "_figure"))))
    nb = nbformat.read(folder / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# Stand-in {name}\n\nWhat it found, [above](#Stand-in-{name})."))
    nbformat.write(nb, folder / name)
    executed = staging / "notebooks" / name
    executed.parent.mkdir(parents=True, exist_ok=True)
    with R._kernel_environment(smoke=True):
        papermill.execute_notebook(
            str(folder / name),
            str(executed),
            kernel_name="python3",
            progress_bar=False,
            parameters={"SMOKE": True, "DATA_ROOT": str(data_root), "OUTPUT_DIR": str(staging), "VERIFY_DATA": False},
        )
    return executed


def _visible_text(page: str) -> str:
    body = page.split("<main>", 1)[1]
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<style.*?</style>", "", body, flags=re.S)))


@pytest.mark.slow
def test_renderings_name_no_machine_path_and_the_reading_one_shows_no_code(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.delenv("CIFAR10_ROOT", raising=False)  # the data root is then shown by its folder's name
    out = tmp_path / "out"
    staging = out / ".report-staging-pid1-abc"
    executed = executed_stand_in(tmp_path / "nbs", staging, synthetic_root)
    assert str(staging) in executed.read_text()  # papermill wrote the machine paths into the executed notebook
    plain, coded = rendering.write_renderings(
        executed, out / "reports", rendering.PathDisplay(out, staging, synthetic_root)
    )
    assert (plain.name, coded.name) == ("01_data_exploration.html", "01_data_exploration.code.html")
    for page in (plain.read_text(), coded.read_text()):
        for machine in (str(tmp_path), str(synthetic_root), str(PROJECT), "report-staging", "/tmp/"):
            assert machine not in page
        assert "<script src=" not in page  # nothing fetched from the network: the page reads offline
    text, code_text = _visible_text(plain.read_text()), _visible_text(coded.read_text())
    # Printed text is for whoever runs the code: in the code twin (paths shown relative), not in the reading page.
    assert f"figures go to out/figures and the data is in {synthetic_root.name}" in code_text
    assert "figures go to" not in text
    assert "OUTPUT_DIR = 'out'" in text and f"DATA_ROOT = '{synthetic_root.name}'" in text
    assert "VERIFY_DATA" not in text  # how the report ran, not what a reader needs
    assert code_text.index("Stand-in 01_data_exploration.ipynb") < code_text.index("figures go to")
    assert (
        "print(" not in text
        and "import os" not in text
        and "jp-InputArea-editor" not in plain.read_text().split("<main>")[1]
    )
    assert "print(" in code_text and "import os" in code_text
    assert "a progress bar in" not in text and "a progress bar in <python>" in code_text  # stderr: with the code only
    assert "# Parameters set by the report" in code_text and "OUTPUT_DIR = 'out'" in code_text
    assert 'href="01_data_exploration.code.html"' in plain.read_text()
    assert 'href="01_data_exploration.html"' in coded.read_text() and 'href="../index.html"' in coded.read_text()


def test_path_display_relative_to_the_project_then_the_data_variable_then_the_output_folder(tmp_path, monkeypatch):
    data = tmp_path / "datasets" / "cifar10"
    monkeypatch.setenv("CIFAR10_ROOT", str(data))
    inside = rendering.PathDisplay(PROJECT / "outputs", PROJECT / "outputs" / ".report-staging-pid9-x", data)
    assert inside.shown(PROJECT / "outputs" / ".report-staging-pid9-x" / "runs" / "a") == "outputs/runs/a"
    assert inside.shown(PROJECT / "data") == "data" and inside.shown(data) == "$CIFAR10_ROOT"
    assert inside.shown("relative/name") == "relative/name" and inside.shown("/somewhere/else/run") == ".../run"
    outside = rendering.PathDisplay(tmp_path / "report", None, tmp_path / "other")
    assert outside.shown(tmp_path / "report" / "runs" / "b") == "report/runs/b"
    assert outside.value({"RUNS": [str(tmp_path / "report" / "runs" / "b"), "c"]}) == {"RUNS": ["report/runs/b", "c"]}
    assert (
        inside.text(f"in {PROJECT}/outputs/.report-staging-pid9-x/runs/a, from {data}/x; {PROJECT}")
        == "in outputs/runs/a, from $CIFAR10_ROOT/x; ."
    )
    assert inside.text(f"{PROJECT}-old/file") == f"{PROJECT}-old/file"  # a sibling folder is not the project


def _record(
    folder: Path,
    accuracy: float,
    recipe: str = "seed",
    seed: int = 0,
    train_images: int = 45000,
    test_images: int = 10000,
    val: float | None = None,
    provenance: dict | None = None,
    **knobs,
) -> Path:
    """A finished run's record as training writes it (config.json and metrics.json), with a given test accuracy
    and, with `val`, a validation accuracy on 5,000 images."""
    from cifar_utils.core.config import recipe_config

    folder.mkdir(parents=True)
    run_files.write_json(folder / run_files.CONFIG, recipe_config(recipe, seed=seed, **knobs).to_dict())
    metrics = {"test_accuracy": accuracy, "test_images": test_images, "train_images": train_images, "seconds": 1.0}
    if val is not None:
        metrics.update(val_accuracy=val, val_images=5000, val_accuracy_no_tta=val - 0.005)
    if provenance is not None:
        metrics["provenance"] = provenance
    run_files.write_json(folder / run_files.METRICS, metrics)
    return folder


def _texts(lines) -> list[str]:
    return [h.text for h in lines]


def test_executive_summary_computes_every_number_from_the_runs(tmp_path):
    from cifar_utils.analysis import stats

    xeon = {"date": "2026-12-01T05:00:00+00:00", "git_commit": "93da42b95b70", "cpu": "Intel(R) Xeon(R) Processor",
            "cpu_isa": "amx", "precision": "bf16"}  # fmt: skip
    zen = {**xeon, "date": "2026-12-07T04:00:00+00:00", "git_commit": "c4175f4cdb46", "cpu": "AMD EPYC",
           "cpu_isa": "avx512_bf16", "precision": "fp32"}  # fmt: skip
    folders = [
        _record(tmp_path / "seed-seed_cnn-seed0", 0.7921, val=0.7948, provenance=zen),
        _record(tmp_path / "fast", 0.9403, "fast", val=0.9386, provenance=xeon),
        tmp_path / "not-a-run",
    ]
    groups = landing.configurations(folders)
    assert sorted(g.n for g in groups) == [1, 1]
    lines = landing.executive_summary(groups)
    assert [h.key for h in lines] == ["provenance", "best", "baseline"]  # where and when first, on the first screen
    assert lines[1].text == (
        "Best model, chosen on validation accuracy (5,000 held-out training images) among 2 tested configurations; "
        "the test set chose nothing: the fast recipe (fast, 8 epochs on 45,000 training images), 93.86% validation "
        "and 94.03% test accuracy on 10,000 images, one seed, no interval; both scores with test-time augmentation "
        "(mirror+translate on 25% of images; validation 93.36% without)."
    )
    assert lines[1].link == "reports/03_results_analysis.html"
    assert lines[2].text == (
        "Seed baseline: the seed recipe (seed_cnn, 10 epochs on 45,000 training images), 79.48% validation and "
        "79.21% test accuracy on 10,000 images, one seed, no interval; no test-time augmentation in either score."
    )
    assert lines[0].text == (
        "Provenance: these answers come from 2 run records trained 2026-12-01 to 2026-12-07 at commits 93da42b, "
        "c4175f4 on 2 machines (AMD EPYC, ISA class avx512_bf16; Intel Xeon Processor, ISA class amx), in bf16 and "
        "fp32."
    )
    # Several seeds: means with a t interval each, and a smoke run says so first.
    more = [_record(tmp_path / f"seed{s}", a, seed=s, val=v) for s, a, v in ((1, 0.788, 0.7968), (2, 0.7958, 0.7942))]
    val, test = stats.summarize([79.48, 79.68, 79.42]), stats.summarize([79.21, 78.8, 79.58])
    lines = landing.executive_summary(landing.configurations(folders + more), smoke=True)
    assert lines[0].key == "smoke" and lines[0].text.startswith("Smoke run:")
    assert (
        f"{val.mean:.2f}% validation and {test.mean:.2f}% test accuracy on 10,000 images, means over 3 seeds "
        f"(95% t intervals [{val.ci_low:.2f}, {val.ci_high:.2f}]% and [{test.ci_low:.2f}, {test.ci_high:.2f}]%)"
    ) in lines[3].text
    assert _texts(landing.executive_summary([])) == [
        "No run with a test result was found; run the report (`make report`) to train and evaluate one."
    ]


def test_the_best_model_is_chosen_on_validation_even_when_another_tests_higher(tmp_path):
    folders = [
        _record(tmp_path / "seed", 0.79, val=0.795),
        _record(tmp_path / "fast-a", 0.930, "fast", val=0.940),  # best on validation
        _record(tmp_path / "fast-b", 0.945, "fast", val=0.935, label_smoothing=0.1),  # best on test: not chosen
        _record(tmp_path / "untested-val", 0.99, "fast", val=0.90, test_images=1000),  # other test set: not a candidate
    ]
    best, candidates = landing.best_on_validation(landing.configurations(folders))
    assert best.folders == [tmp_path / "fast-a"] and len(candidates) == 3
    line = landing.executive_summary(landing.configurations(folders))[0].text
    assert "94.00% validation and 93.00% test accuracy" in line and "94.50%" not in line


def _ablation(rows: list[H.Effect]) -> H.AblationFindings:
    return H.AblationFindings("full recipe", "validation accuracy", "2 epochs", 1.0, rows)


def test_a_difference_holm_did_not_resolve_is_never_named_as_one(tmp_path):
    """p = 0.02 alone, 0.062 once corrected: 'not resolvable at this budget', never among the effects."""
    seed = [_record(tmp_path / "seed", 0.79, val=0.795)]
    resolved = H.Effect("no whitening", 4, -1.56, -2.14, -0.98, 0.0166, H.verdict_of(0.0166))
    unresolved = H.Effect("seed recipe at 2 epochs", 4, -8.70, -13.15, -4.25, 0.062, H.verdict_of(0.062))
    equivalent = H.Effect("augment none", 4, -0.09, -0.52, 0.34, 1.0, H.verdict_of(1.0, equivalent=True), 0.003)
    assert (resolved.verdict, unresolved.verdict, equivalent.verdict) == (H.DIFFERS, H.UNRESOLVED, H.EQUIVALENT)
    H.write(_ablation([unresolved, resolved, equivalent]), tmp_path)
    lines = landing.executive_summary(landing.configurations(seed), findings_dir=tmp_path)
    line = next(h for h in lines if h.key == "04")
    assert line.link == "reports/04_augmentation_ablation.html"
    effects, rest = line.text.split("equivalent within", 1)
    assert "no whitening -1.56 [-2.14, -0.98]" in effects and "-8.70" not in line.text
    assert "seed recipe at 2 epochs" not in effects
    assert rest.endswith("(TOST): augment none; not resolvable at this budget: seed recipe at 2 epochs.")
    # Nothing resolved at all: said so, and no effect named.
    H.write(_ablation([unresolved]), tmp_path)
    line = next(
        h for h in landing.executive_summary(landing.configurations(seed), findings_dir=tmp_path) if h.key == "04"
    )
    assert "no change to it is resolved after Holm's correction" in line.text and "-8.70" not in line.text
    # The same from a real comparison table: raw p below 0.05, Holm above it.
    import pandas as pd

    from cifar_utils.analysis import comparisons as C

    values = pd.DataFrame(
        [
            {"arm": arm, "seed": s, "val_accuracy": v}
            for arm, vals in {
                "full": [0.850, 0.860, 0.855, 0.858],
                "a": [0.846, 0.857, 0.849, 0.856],
                "b": [0.850, 0.861, 0.856, 0.855],
                "c": [0.852, 0.859, 0.854, 0.860],
            }.items()
            for s, v in enumerate(vals, 1)
        ]
    )
    table = C.compare_arms(values, "arm", "full", value="val_accuracy", delta=0.003, what="validation accuracy")
    assert table.loc["a", "p_paired"] < 0.05 <= table.loc["a", "p_holm"] and table.loc["a", "ci_high"] < 0
    record = H.ablation_record(table, "full", "2 epochs", 0.003, None, [])
    assert [e.verdict for e in record.rows] == [H.UNRESOLVED] * 3
    H.write(record, tmp_path)
    line = next(
        h for h in landing.executive_summary(landing.configurations(seed), findings_dir=tmp_path) if h.key == "04"
    )
    assert "no change to it is resolved" in line.text and "-0.38" not in line.text
    assert line.text.endswith("not resolvable at this budget: a, b, c.")


def test_each_findings_record_gives_one_linked_sentence_and_an_absent_one_none(tmp_path):
    seed = [_record(tmp_path / "runs" / "seed", 0.79, val=0.795)]
    groups = landing.configurations(seed)
    assert [h.key for h in landing.executive_summary(groups, findings_dir=tmp_path)] == ["best", "baseline"]
    prov = H.Provenance(12, "2026-12-01", "2026-12-08", ["2565c7048d04"], ["AMD EPYC (avx512_bf16)"], ["bf16"])
    equal = H.Effect("trial 11", 4, 0.0, -0.52, 0.53, 1.0, H.EQUIVALENT, tost_p=0.0045)
    H.write(
        H.SearchFindings(12, 8, 4, 0, "fast recipe", "trial 11", "lr 0.151", H.Interval(85.76, 4, 85.40, 86.13, 0.23),
                         H.Interval(85.53, 4, 85.08, 85.97, 0.28), equal, 1.0, 86.2, provenance=prov),
        tmp_path,
    )  # fmt: skip
    H.write(
        H.RobustnessFindings(
            2000, 13, [1, 2, 3, 4, 5],
            [H.ModelRobustness("seed", 1, 80.10, 64.86, 19.0, "contrast", 52.1),
             H.ModelRobustness("fast", 1, 92.70, 66.33, 28.4, "gaussian_noise", 18.45)],
            H.Effect("fast vs seed", 1, 1.47, None, None, None, H.NOT_TESTED),
            [H.ModelCalibration("fast", 0.484, "validation", 19.99, 1.46, 12.73, 12.75)],
        ),
        tmp_path,
    )  # fmt: skip
    slow = H.Effect("fast vs seed_cnn", 3, 0.4, -3.0, 3.8, 0.4, H.UNRESOLVED)
    H.write(
        H.ArchitectureFindings(
            [H.BudgetLeader(60, None),
             H.BudgetLeader(300, "fast", 4, 263, H.Interval(91.87, 3, 90.28, 93.45), "seed_cnn",
                            H.Interval(91.47, 3, 88.0, 95.0), slow, H.Interval(91.5, 3, 91.0, 92.0))],
            sized_on="a Zen 5",
        ),
        tmp_path,
    )  # fmt: skip
    lines = landing.executive_summary(groups, findings_dir=tmp_path)
    by_key = {h.key: h for h in lines}
    assert list(by_key) == ["provenance", "best", "baseline", "05", "06", "07"]
    assert by_key["05"].text == (
        "The search (12 Optuna trials scored on validation: 8 complete, 4 pruned, 0 failed) chose trial 11 (lr 0.151), "
        "equivalent to the fast recipe within the ±1-point margin (+0.00 points, 95% CI [-0.52, +0.53], TOST p = "
        "0.0045, 4 fresh seeds); its test accuracy, read once, is 85.53% (4 seeds, 95% t interval [85.08, 85.97]%)."
    )
    assert "fast vs seed: not tested (one seed each)" in by_key["06"].text
    assert "19.99% -> 1.46% clean and 12.73% -> 12.75% corrupted for fast" in by_key["06"].text
    seven = by_key["07"].text
    assert (
        "60 s: nothing finishes" in seven
        and "budgets of a Zen 5" in seven
        and "on validation, 3 seeds, 95% t intervals" in seven
    )
    assert (
        "300 s: fast (4 epochs) 91.87% [90.28, 93.45], test 91.50%, not resolvable against seed_cnn's 91.47%" in seven
    )
    assert "above" not in seven
    assert by_key["07"].link == "reports/07_architectures.html"
    assert "2026-12-01 to 2026-12-08" in by_key["provenance"].text and "AMD EPYC, ISA class avx512_bf16" in (
        by_key["provenance"].text
    )
    # A link is kept only where its page exists.
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "05_hyperparameter_search.html").write_text("x")
    linked = [h.key for h in landing.with_existing_links(lines, [tmp_path]) if h.link]
    assert linked == ["05"]
    assert landing.markdown_lines([by_key["05"]], "outputs/")[0].endswith(
        "([report 05](outputs/reports/05_hyperparameter_search.html))"
    )


def test_landing_page_links_both_renderings_and_each_notebooks_figures(tmp_path):
    for name in (
        "reports/01_data_exploration.html",
        "reports/01_data_exploration.code.html",
        "reports/06_robustness.html",
        "reports/06_robustness.code.html",
        "figures/01_class_balance.png",
        "figures/landing_page.png",
        "figures/07_unknown.png",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    nb = new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · Data exploration\n\nText.")])
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "01_data_exploration.ipynb")
    page = landing.write_index(tmp_path, ["First sentence with <b>.", "Second."], R.NOTEBOOKS).read_text()
    assert "<li>First sentence with &lt;b&gt;.</li><li>Second.</li>" in page
    assert '<td>01 · Data exploration</td><td><a href="reports/01_data_exploration.html">report</a></td>' in page
    assert 'href="reports/01_data_exploration.code.html"' in page and 'src="figures/01_class_balance.png"' in page
    assert "landing_page.png" not in page and "07_unknown" not in page  # only the notebooks' own figures
    assert "02_training" not in page  # a notebook without a report is not listed
    assert "<td>06 · Robustness" in page  # no executed copy (a clone's report skipped it): the source's title


# ----------------------------------------------------------------------------- every way a report can fail
# Whatever stops a report, the previous one stays as it was, the staging folder is gone, and the
# message names the notebook and the cause.

RUN_NAME = "seed-seed_cnn-seed0-smoke"  # what --smoke names the run


def _three_notebooks(folder: Path, first: str = "x = 1", second: str = "x = 2", third: str = "x = 3") -> Path:
    """Stand-ins for notebooks 01-03 (the report runs with experiments=False)."""
    folder.mkdir()
    _fake_notebook(folder / "01_data_exploration.ipynb", first)
    _fake_notebook(folder / "02_training.ipynb", second, params="RUN_NAME = None\nRUNS_DIR = None\nREUSE = True")
    _fake_notebook(folder / "03_results_analysis.ipynb", third, params="RUNS = None")
    return folder


@pytest.fixture
def previous_report(tmp_path) -> Path:
    out = tmp_path / "out"
    for name, text in {
        "results.md": "the good report\n",
        "notebooks/01_data_exploration.ipynb": "{}\n",
        "reports/01_data_exploration.html": "<p>old</p>\n",
        "figures/01_class_balance.png": "png",
        f"runs/{RUN_NAME}/history.csv": "epoch\n1\n",
    }.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return out


def _snapshot(out: Path) -> dict:
    """Every file of the report by path, but for lock files and the copies of failed notebooks."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.endswith((".lock", ".failed.ipynb"))
    }


def _report(out: Path, nbs: Path, synthetic_root: Path, **kwargs):
    return R.run_report(
        out,
        smoke=True,
        data_root=synthetic_root,
        verify=False,
        notebooks_dir=nbs,
        experiments=False,
        log=None,
        **kwargs,
    )


@pytest.mark.slow
def test_a_later_notebook_failing_after_earlier_ones_ran_replaces_nothing(tmp_path, synthetic_root, previous_report):
    before = _snapshot(previous_report)
    nbs = _three_notebooks(tmp_path / "nbs", third="raise ValueError('bad numbers in the comparison')")
    with pytest.raises(R.NotebookFailed) as exc:
        _report(previous_report, nbs, synthetic_root)
    message = str(exc.value)
    assert message.startswith("notebook 03_results_analysis.ipynb failed in cell ")
    assert "with ValueError: bad numbers in the comparison" in message
    assert _snapshot(previous_report) == before  # 01 and 02 ran, and their new copies went with the staging folder
    assert (previous_report / "notebooks" / "03_results_analysis.failed.ipynb").is_file()
    assert not list(previous_report.glob(".report-staging-*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "cells,timeout,expected",
    [
        (
            {"second": "import os\nos._exit(1)"},
            None,
            "notebook 02_training.ipynb stopped: its kernel died (out of memory, or a crash outside Python); nothing in ",
        ),
        (
            {"first": "import time\ntime.sleep(120)"},
            5,
            "notebook 01_data_exploration.ipynb stopped: a cell ran longer than the 5 s limit (--cell-timeout); nothing in ",
        ),
    ],
    ids=["kernel dies", "cell times out"],
)
def test_a_kernel_that_dies_or_times_out_replaces_nothing(
    tmp_path, synthetic_root, previous_report, cells, timeout, expected
):
    before = _snapshot(previous_report)
    nbs = _three_notebooks(tmp_path / "nbs", **cells)
    started = time.monotonic()
    with pytest.raises(R.NotebookFailed) as exc:
        _report(previous_report, nbs, synthetic_root, cell_timeout=timeout)
    assert time.monotonic() - started < 100  # the sleeping cell was stopped, not waited out
    assert str(exc.value).startswith(expected + f"{previous_report} was replaced"), str(exc.value)
    assert _snapshot(previous_report) == before and not list(previous_report.glob(".report-staging-*"))


@pytest.mark.slow
def test_an_html_export_failing_after_every_notebook_ran_replaces_nothing(
    tmp_path, synthetic_root, previous_report, monkeypatch
):
    from nbconvert import HTMLExporter

    before = _snapshot(previous_report)
    rendered = []
    real = HTMLExporter.from_notebook_node

    def export(self, nb, resources=None, **kwargs):
        rendered.append(resources["metadata"]["name"] + ".ipynb")
        if len(set(rendered)) == len(R.NOTEBOOKS[:3]):  # the last notebook: every one has run by now
            raise ValueError("template 'lab' not found")
        return real(self, nb, resources, **kwargs)

    monkeypatch.setattr(HTMLExporter, "from_notebook_node", export)
    with pytest.raises(R.NotebookFailed) as exc:
        _report(previous_report, _three_notebooks(tmp_path / "nbs"), synthetic_root)
    assert list(dict.fromkeys(rendered)) == list(R.NOTEBOOKS[:3])
    assert str(exc.value) == (
        f"notebook 03_results_analysis.ipynb ran, but could not be rendered as HTML (ValueError: "
        f"template 'lab' not found); nothing in {previous_report} was replaced"
    )
    assert _snapshot(previous_report) == before and not list(previous_report.glob(".report-staging-*"))


@pytest.mark.slow
def test_ctrl_c_during_a_report_replaces_nothing_and_stops_the_kernel(tmp_path, synthetic_root, previous_report):
    """A real SIGINT to a report process while notebook 02's kernel sleeps in a cell."""
    before = _snapshot(previous_report)
    kernel_pid = tmp_path / "kernel.pid"
    nbs = _three_notebooks(
        tmp_path / "nbs",
        second=f"import os, time\nopen({str(kernel_pid)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)",
    )
    child = (
        f"import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"from cifar_utils.report import runner as R\nfrom cifar_utils.errors import CifarError\n"
        f"try:\n    R.run_report({str(previous_report)!r}, smoke=True, data_root={str(synthetic_root)!r}, verify=False,"
        f" notebooks_dir={str(nbs)!r}, experiments=False, log=None)\n"
        f"except CifarError as exc:\n    print(f'error: {{exc}}', file=sys.stderr); sys.exit(130)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (kernel_pid.exists() and kernel_pid.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "notebook 02 never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # The dying kernel may print its own tracebacks on the same stderr; none may come from the report process.
    assert proc.returncode == 130 and 'File "<string>"' not in err and "/cifar_utils/" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines == [
        f"error: report interrupted (Ctrl-C) in notebook 02_training.ipynb; nothing in {previous_report} "
        f"was replaced (the runs notebooks 04, 05 and 07 finished are kept, and reused next time)"
    ], err
    assert _snapshot(previous_report) == before and not list(previous_report.glob(".report-staging-*"))
    kernel = int(kernel_pid.read_text())
    deadline = time.monotonic() + 30  # the kernel notices that its parent has gone
    while Path(f"/proc/{kernel}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{kernel}").exists(), "the kernel outlived the interrupted report"


@pytest.mark.slow
def test_a_full_report_analyses_the_reference_run_beside_its_own(tmp_path, synthetic_root, monkeypatch):
    """Not smoke: the reference run is trained once (reused the next time, trained again with --retrain),
    notebooks 03 and 06 receive it after the report's own run, and 06 corrupts the first 2,000 test images."""
    from cifar_utils.runs import reference as REF

    monkeypatch.setattr(
        REF, "REFERENCE_RUNS", {"tiny-ref": ("seed", {"epochs": 1, "train_subset": 200, "val_size": 100})}
    )
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _stand_in_01_and_02(nbs, synthetic_root)
    seen = tmp_path / "seen"
    seen.mkdir()
    record = "import json\nopen({path!r}, 'w').write(json.dumps({{'runs': [str(r) for r in RUNS], 'test_images': TEST_IMAGES}}))"
    _fake_notebook(
        nbs / "03_results_analysis.ipynb",
        record.format(path=str(seen / "03.json")),
        params="RUNS = None\nTEST_IMAGES = None\nEXPERIMENT_RUNS_DIR = None",
    )
    _fake_notebook(
        nbs / "06_robustness.ipynb",
        record.format(path=str(seen / "06.json")),
        params="RUNS = None\nTEST_IMAGES = None\nCACHE_DIR = None",
    )
    for name in R.RECORD_NOTEBOOKS:
        _fake_notebook(nbs / name, "x = 1", params="RUNS_DIR = None\nRERUN = False")
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "06_explanations_a-deleted-run.png").write_bytes(b"stale")  # 06 ran again without it
    (out / "figures" / "landing_page.png").write_bytes(b"no notebook makes this")
    said = []
    R.run_report(out, data_root=synthetic_root, verify=False, notebooks_dir=nbs, log=said.append)
    assert not (out / "figures" / "06_explanations_a-deleted-run.png").exists()
    assert "a-deleted-run" not in (out / "index.html").read_text()
    assert (out / "figures" / "landing_page.png").read_bytes() == b"no notebook makes this"

    reference = out / "runs" / "tiny-ref"
    assert run_files.load_run(reference).metrics["test_accuracy"] is not None
    for name in ("03", "06"):
        passed = json.loads((seen / f"{name}.json").read_text())
        assert [Path(r).name for r in passed["runs"]] == ["seed-seed_cnn-seed0", "tiny-ref"]
    assert json.loads((seen / "06.json").read_text())["test_images"] == robustness.REPORT_TEST_IMAGES
    assert json.loads((seen / "03.json").read_text())["test_images"] is None  # 03 still evaluates every test image

    trained_at = (reference / run_files.CHECKPOINT).stat().st_mtime_ns
    R.run_report(out, data_root=synthetic_root, verify=False, notebooks_dir=nbs, params={"TEST_IMAGES": 300}, log=None)
    assert (reference / run_files.CHECKPOINT).stat().st_mtime_ns == trained_at  # reused
    assert json.loads((seen / "06.json").read_text())["test_images"] == 300
    R.run_report(out, data_root=synthetic_root, verify=False, notebooks_dir=nbs, reuse=False, log=None)
    assert (reference / run_files.CHECKPOINT).stat().st_mtime_ns != trained_at  # --retrain trains it again


def test_without_a_browser_the_landing_screenshot_is_left_as_it_was(tmp_path, monkeypatch):
    from cifar_utils.report import browser

    target = tmp_path / "landing_page.png"
    target.write_bytes(b"the committed picture")
    monkeypatch.setattr(browser, "unavailable", lambda: "/usr/bin/chromium is missing")
    line = browser.refresh_landing_screenshot(tmp_path / "index.html", target)
    assert line == f"{target} left as it was: /usr/bin/chromium is missing"
    assert target.read_bytes() == b"the committed picture"
