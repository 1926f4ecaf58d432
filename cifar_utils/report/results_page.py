"""results.md: the report's findings as GitHub renders them, every number read from the runs' records.

The executive summary (landing.executive_summary, as on index.html), the trained run's per-epoch table
in the seed's format, its test result, notebook 03's conclusions and per-class table, the key figures
of notebooks 01-03, the comparison of runs, provenance, then the sections notebooks 04-07 wrote.
"""

from __future__ import annotations

from pathlib import Path

from ..analysis.tables import (
    comparison_frame,
    comparison_row,
    history_table,
    markdown_rows,
    markdown_table,
    rebase_links,
)
from ..runs import run_files
from .landing import RESULTS_LINK, Headline, markdown_lines
from .rendering import PathDisplay

# The executive summary's lines in results.md lie between these (headlines.refresh rewrites only them).
SUMMARY_BEGIN, SUMMARY_END = "<!-- summary:begin -->", "<!-- summary:end -->"


def summary_block(overview: list[Headline]) -> list[str]:
    """The executive summary as results.md shows it: one list item per answer, linked (but not to results.md
    itself), between the markers."""
    shown = [Headline(h.text, None, h.key) if h.link == RESULTS_LINK else h for h in overview]
    return [SUMMARY_BEGIN, *markdown_lines(shown), SUMMARY_END]


# The figures results.md shows, from notebooks 01-03, with a caption each (04-07 bring their own in experiments/*.md).
RESULT_FIGURES = (
    ("01_class_balance.png", "Images per class in each split (notebook 01)."),
    ("02_training_curves.png", "Training and validation accuracy and loss per epoch (notebook 02)."),
    ("03_confusion_matrix.png", "Confusion matrix on the test set, rows as shares of the true class (notebook 03)."),
    ("03_reliability.png", "Reliability diagram: accuracy against confidence per bin (notebook 03)."),
)


def _analysis_lines(run_dir: Path, figures: Path | None) -> list[str]:
    """Notebook 03's conclusions and per-class table for results.md, from the run's analysis.json; the figures
    of notebooks 01-03 that `figures` holds."""
    lines = []
    if (run_dir / run_files.ANALYSIS).is_file():
        analysis = run_files.read_json(run_dir / run_files.ANALYSIS)
        lines += ["## What the test predictions say (notebook 03)", ""]
        lines += [f"- {sentence}" for sentence in analysis.get("findings", [])] + [""]
        per_class = analysis.get("per_class") or {}
        if per_class:
            rows = [
                (name, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}") for name, v in per_class.items()
            ]
            lines += [markdown_rows(("class", "precision", "recall", "F1"), rows), ""]
    shown = [(name, caption) for name, caption in RESULT_FIGURES if figures is not None and (figures / name).is_file()]
    lines += ["## Figures", ""] if shown else []
    for name, caption in shown:
        lines += [f"![{caption}](figures/{name})", "", f"*{caption}*", ""]
    return lines


def results_markdown(
    run_dir: Path,
    compare: list[Path],
    seconds: float | None = None,
    smoke: bool = False,
    experiments: Path | None = None,
    overview: list[Headline] = (),
    display: PathDisplay | None = None,
    figures: Path | None = None,
    reused_elsewhere: str | None = None,
) -> str:
    """results.md: the executive summary (`overview`: landing.executive_summary, as on index.html), the trained run's
    seed-format table, its test result, the comparison, the experiments' sections (`experiments/*.md`,
    in notebook order), provenance; `display` shows the data root without its machine path; `reused_elsewhere`:
    run_files.precision_census's line on the records reused from machines of another precision."""
    summary = comparison_row(run_dir)
    config = run_files.read_json(run_dir / run_files.CONFIG)
    metrics = run_files.read_json(run_dir / run_files.METRICS)
    prov = metrics.get("provenance") or config.get("provenance") or {}
    history = run_files.read_history(run_dir / run_files.HISTORY)
    lines = [f"# Results: {run_dir.name}", ""]
    if overview:
        lines += [*summary_block(overview), ""]
    elif smoke:
        lines += ["> Smoke run: a small subset for one epoch; the numbers only show that the pipeline works.", ""]
    lines += [
        f"Model `{config['model']}`, optimizer {config['optimizer']} at lr {config['lr']:g}, batch size "
        f"{config['batch_size']}, augmentation {config['augment']}, epochs {config['epochs']}, seed {config['seed']}.",
        "",
        "## Per-epoch history",
        "",
        history_table(history),
        "",
        "## Test set",
        "",
        f"Test accuracy **{summary['Test accuracy']}**, test loss {summary['Test loss']} "
        f"(on {summary['Test images']} test images).",
        "",
        *_analysis_lines(run_dir, figures),
        "## All runs",
        "",
        markdown_table(comparison_frame(compare)),
        "",
        f"## Provenance of {run_dir.name}",
        "",
        "| Item | Value |",
        "|---|---|",
    ]
    items = [
        ("git commit", prov.get("git_commit")),
        ("torch", prov.get("torch")),
        ("python", prov.get("python")),
        ("device", f"{prov.get('device')} ({prov.get('device_name')})"),
        (
            "CPU",
            f"{prov['cpu']} (ISA class {prov.get('cpu_isa')}, {prov.get('threads')} threads)"
            if prov.get("cpu")
            else None,
        ),
        ("precision", prov.get("precision")),
        ("date (UTC)", prov.get("date")),
        ("seed", config.get("seed")),
        ("training wall time", f"{metrics.get('seconds', float('nan')):.1f} s"),
        ("report wall time", f"{seconds:.1f} s" if seconds is not None else None),
        ("records from other machines", reused_elsewhere),
        ("data", display.shown(prov["data_root"]) if display and prov.get("data_root") else prov.get("data_root")),
    ]
    lines += [f"| {k} | {v} |" for k, v in items if v is not None]
    for section in sorted(Path(experiments).glob("*.md")) if experiments else []:
        # A section links its figures from its own folder; results.md lies in the one above (experiments/..).
        lines += ["", rebase_links(section.read_text(encoding="utf-8").rstrip(), section.parent, section.parent.parent)]
    return "\n".join(lines) + "\n"
