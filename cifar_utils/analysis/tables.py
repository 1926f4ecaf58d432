"""Every table the notebooks, the report and the experiments show, and the one way numbers are written in them.

Tables are pandas DataFrames for the notebooks and GitHub markdown for results.md; missing or NaN
numbers read "n/a" everywhere.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from ..core.config import AVERAGING, FIELDS, TTA_MODES, TrainConfig
from ..runs import run_files


def fmt(value, spec: str) -> str:
    """`value` formatted by `spec` (".2%": a fraction as a percentage), or 'n/a' when missing or NaN."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown_rows(header, rows) -> str:
    """A GitHub markdown table from a header and rows of cells."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def markdown_table(frame) -> str:
    """A DataFrame (index included) as a GitHub markdown table, without needing `tabulate`; missing cells read n/a."""
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    return markdown_rows(header, ([_cell(index), *map(_cell, row)] for index, row in frame.iterrows()))


# ----------------------------------------------------------------------------- a run's history

SEED_TABLE_HEADER = ("Epoch", "Train Loss", "Train Accuracy", "Validation Loss", "Validation Accuracy")


# A markdown link or image, [text](target) or ![text](target): the part before the target, then the target.
_MARKDOWN_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)")
_NOT_A_FILE = ("http://", "https://", "mailto:", "data:", "#", "/")


def rebase_links(text: str, written_from: str | os.PathLike, read_from: str | os.PathLike) -> str:
    """Markdown `text` that lies in folder `written_from`, its relative links rewritten to be read in `read_from`:
    results.md embeds the experiments' sections, which link their figures from experiments/. A link whose file
    is not there relative to `written_from` is left as written (a section written for results.md's folder)."""
    written_from, read_from = Path(written_from), Path(read_from)

    def rebased(match: re.Match) -> str:
        target = match.group(2)
        path = target.split("#", 1)[0]
        file = os.path.normpath(written_from / path)  # lexically: experiments/../figures needs no experiments/
        if target.startswith(_NOT_A_FILE) or not path or not os.path.exists(file):
            return match.group(0)
        moved = Path(os.path.relpath(file, read_from)).as_posix()
        return match.group(1) + moved + target[len(path) :]

    return _MARKDOWN_LINK.sub(rebased, text)


def history_rows(history: list[dict]) -> list[tuple[str, ...]]:
    """The history in the seed's format: losses to 4 decimals, accuracies as percentages."""
    return [
        (
            str(h["epoch"]),
            f"{h['train_loss']:.4f}",
            fmt(h["train_acc"], ".2%"),
            f"{h['val_loss']:.4f}",
            fmt(h["val_acc"], ".2%"),
        )
        for h in history
    ]


def history_table(history: list[dict]) -> str:
    """A markdown table in the seed's format: Epoch | Train Loss | Train Accuracy | Validation ..."""
    return markdown_rows(SEED_TABLE_HEADER, history_rows(history))


def history_frame(history: list[dict]):
    """The seed-format table as a pandas DataFrame (for notebooks)."""
    return pd.DataFrame(history_rows(history), columns=SEED_TABLE_HEADER).set_index("Epoch")


# The knobs every run is described by; the others are shown only where the run moves them from the default.
CORE_KNOBS = (
    "model",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "augment",
    "schedule",
    "seed",
    "val_size",
    "precision",
    "device",
)


# Knobs that only matter once another knob turns them on: (knob, its values that use them) -> the knobs.
KNOBS_IN_USE = {
    ("optimizer", ("sgd", "muon")): ("momentum", "nesterov"),
    ("optimizer", ("muon",)): ("muon_momentum",),
    ("averaging", AVERAGING[1:]): ("averaging_decay", "averaging_every"),
    ("tta", TTA_MODES[1:]): ("tta_share",),
}


def config_frame(config, name: str = "value"):
    """The knobs that describe `config`: the core ones, every one set away from its default and every one a
    setting of the run puts to use (Muon's momentum under optimizer muon), one row each with its help text.
    A fast-recipe knob the run leaves at its default and does not use is not listed."""
    default = TrainConfig()
    values = config.to_dict()
    in_use = {k for (knob, settings), knobs in KNOBS_IN_USE.items() if values.get(knob) in settings for k in knobs}
    rows = {
        field: (value, FIELDS[field].metadata["help"])
        for field, value in values.items()
        if field in CORE_KNOBS or field in in_use or value != getattr(default, field)
    }
    frame = pd.DataFrame([(k, _cell(v), h) for k, (v, h) in rows.items()], columns=["knob", name, "what it is"])
    return frame.set_index("knob")


# ----------------------------------------------------------------------------- the data and a run's test predictions


def counts_table(counts: dict, classes):
    """Images per class (rows, plus a total row) and split (columns)."""
    frame = pd.DataFrame({name: [int(v) for v in values] for name, values in counts.items()}, index=list(classes))
    frame.loc["total"] = frame.sum()
    frame.index.name = "class"
    return frame


def constants_table(mean, std):
    """The per-channel normalisation constants on the 0-255 and the 0-1 scale."""
    rows = {
        "mean (0-255)": [float(v) for v in mean],
        "std (0-255)": [float(v) for v in std],
        "mean (0-1)": [float(v) / 255 for v in mean],
        "std (0-1)": [float(v) / 255 for v in std],
    }
    return pd.DataFrame(rows, index=["red", "green", "blue"]).round(4)


def per_class_table(report: dict, classes):
    frame = pd.DataFrame(
        {
            "precision": report["precision"].numpy(),
            "recall": report["recall"].numpy(),
            "f1": report["f1"].numpy(),
            "support": report["support"].numpy(),
        },
        index=list(classes),
    )
    frame.loc["macro average"] = [
        frame["precision"].mean(),
        frame["recall"].mean(),
        frame["f1"].mean(),
        frame["support"].sum(),
    ]
    frame["support"] = frame["support"].astype(int)
    frame.index.name = "class"
    return frame.round(4)


def confused_pairs_table(pairs, classes):
    return pd.DataFrame(
        [(classes[t], classes[p], n, round(100 * share, 2)) for t, p, n, share in pairs],
        columns=["true class", "predicted as", "images", "% of true class"],
    )


# ----------------------------------------------------------------------------- runs side by side


COMPARISON_COLUMNS = (
    "Run",
    "Kind",
    "Model",
    "Optimizer",
    "LR",
    "Augment",
    "Epochs",
    "Train images",
    "Best val accuracy",
    "Final val accuracy",
    "Test accuracy",
    "Test loss",
    "Test images",
    "Wall time (s)",
    "Device",
)


def comparison_row(run_dir: str | os.PathLike) -> dict:
    """One run's row for the comparison: its config, best / final validation, test result and wall time.

    Test numbers come from metrics.json (the whole test set, written by `fit`); a run trained
    without a test evaluation (smoke mode) falls back on notebook 03's analysis.json.
    """
    run_dir = Path(run_dir)
    config = run_files.read_json(run_dir / run_files.CONFIG)
    metrics = run_files.read_json(run_dir / run_files.METRICS) if (run_dir / run_files.METRICS).is_file() else {}
    history = run_files.read_history(run_dir / run_files.HISTORY) if (run_dir / run_files.HISTORY).is_file() else []
    analysis = run_files.read_json(run_dir / run_files.ANALYSIS) if (run_dir / run_files.ANALYSIS).is_file() else {}
    val = [h["val_acc"] for h in history if not math.isnan(h["val_acc"])]
    if metrics.get("test_accuracy") is not None:
        test = (
            metrics["test_accuracy"],
            metrics.get("test_loss"),
            metrics.get("test_images", 10000),
        )  # older runs: all
    else:
        test = (analysis.get("test_accuracy"), analysis.get("test_loss"), analysis.get("test_images"))
    prov = metrics.get("provenance") or config.get("provenance") or {}
    kind = "trained run" if (run_dir / run_files.CHECKPOINT).is_file() else "experiment record"
    return {
        "Run": run_dir.name,
        "Kind": kind,
        "Model": config.get("model"),
        "Optimizer": config.get("optimizer"),
        "LR": fmt(config.get("lr"), "g"),
        "Augment": config.get("augment"),
        "Epochs": f"{len(history)}/{config.get('epochs')}",
        "Train images": metrics.get("train_images", "n/a"),
        "Best val accuracy": fmt(max(val) if val else None, ".2%"),
        "Final val accuracy": fmt(val[-1] if val else None, ".2%"),
        "Test accuracy": fmt(test[0], ".2%"),
        "Test loss": fmt(test[1], ".4f"),
        "Test images": test[2] or "n/a",
        "Wall time (s)": fmt(metrics.get("seconds"), ".1f"),
        "Device": prov.get("device", "n/a"),
    }


def comparison_frame(run_dirs):
    """The comparison table of runs as a pandas DataFrame (formatted strings, like history_frame)."""
    return pd.DataFrame([comparison_row(p) for p in run_dirs], columns=list(COMPARISON_COLUMNS)).set_index("Run")
