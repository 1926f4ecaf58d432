"""The landing page (outputs/index.html) and the executive summary that opens it and results.md.

Every number comes from the run folders: metrics.json, or notebook 03's analysis.json for a run
trained without a test pass. Runs that differ only in their seed (and in how they ran: device,
precision, memory layout, evaluation batch) are one configuration, summarised over its seeds
with a t interval when there are at least two. Nothing here trains or evaluates.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..analysis import stats
from ..core.config import RECIPES, TrainConfig
from ..paths import project_dir
from ..runs import atomic, run_files
from .rendering import INDEX, notebook_title, rendering_names

# Fields that say how a run was executed, not what was trained.
HOW_IT_RAN = ("seed", "device", "precision", "channels_last", "eval_batch_size", "provenance")
# Fields that size a recipe rather than change it: "the seed recipe on 10,000 images" is still the seed recipe.
SIZE = ("epochs", "train_subset", "val_size")
SEED_RECIPE = "seed"


@dataclass
class Configuration:
    """Runs of one configuration: their test accuracies (fractions) and what they were trained on."""

    config: dict
    train_images: int | None
    test_images: int
    folders: list[Path] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def summary(self) -> stats.Summary:
        return stats.summarize(self.accuracies)

    @property
    def recipe(self) -> tuple[str | None, dict]:
        """The named recipe this is closest to and the knobs (beyond size) where it differs."""
        best = None
        for name, values in RECIPES.items():
            reference = TrainConfig.from_dict(values).to_dict()
            differs = {
                k: v
                for k, v in self.config.items()
                if k not in HOW_IT_RAN + SIZE and k in reference and reference[k] != v
            }
            if best is None or len(differs) < len(best[1]):
                best = (name, differs)
        return best if best and len(best[1]) <= 2 else (None, {})

    @property
    def label(self) -> str:
        c = self.config
        images = f"{self.train_images:,} training images" if self.train_images else "the training images"
        size = f"{c.get('epochs')} epochs on {images}"
        name, differs = self.recipe
        if name is None:
            return (
                f"{c.get('model')} with {c.get('optimizer')} at lr {c.get('lr'):g}, {c.get('augment')} augmentation, "
                f"{size}"
            )
        changed = "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in differs.items())
        return f"the {name} recipe{changed} ({c.get('model')}, {size})"


def _test_result(folder: Path, metrics: dict) -> tuple[float | None, int | None]:
    if metrics.get("test_accuracy") is not None:
        return metrics["test_accuracy"], metrics.get("test_images") or 10000
    analysis = folder / run_files.ANALYSIS
    if analysis.is_file():
        found = run_files.read_json(analysis)
        return found.get("test_accuracy"), found.get("test_images")
    return None, None


def configurations(folders) -> list[Configuration]:
    """The runs in `folders` with a test result, grouped by configuration (seeds apart), in first-seen order."""
    groups: dict[str, Configuration] = {}
    for folder in map(Path, folders):
        if not (folder / run_files.CONFIG).is_file() or not (folder / run_files.METRICS).is_file():
            continue
        config, metrics = (
            run_files.read_json(folder / run_files.CONFIG),
            run_files.read_json(folder / run_files.METRICS),
        )
        accuracy, test_images = _test_result(folder, metrics)
        if accuracy is None or (isinstance(accuracy, float) and math.isnan(accuracy)):
            continue
        what = {k: v for k, v in config.items() if k not in HOW_IT_RAN}
        key = json.dumps([what, metrics.get("train_images"), test_images], sort_keys=True, default=str)
        group = groups.setdefault(key, Configuration(what, metrics.get("train_images"), test_images))
        group.folders.append(folder)
        group.accuracies.append(float(accuracy))
    return list(groups.values())


def _accuracy(group: Configuration) -> str:
    s = group.summary
    if group.n < 2:
        return f"{100 * s.mean:.2f}% test accuracy (one seed, so no interval)"
    return (
        f"{100 * s.mean:.2f}% mean test accuracy over {s.n} seeds (95% t interval "
        f"[{100 * s.ci_low:.2f}, {100 * s.ci_high:.2f}]%)"
    )


def _difference(a: Configuration, b: Configuration) -> str:
    if a.n >= 2 and b.n >= 2:
        c = stats.welch_test(a.accuracies, b.accuracies)
        if not math.isnan(c.p_value):
            return (
                f"{100 * c.difference:+.2f} points (95% Welch interval [{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}])"
            )
    return f"{100 * (a.summary.mean - b.summary.mean):+.2f} points (one seed on a side, so no interval)"


def seed_baseline(groups: list[Configuration]) -> Configuration | None:
    """The seed recipe unchanged, on the most training images, then with the most seeds."""
    found = [g for g in groups if g.recipe == (SEED_RECIPE, {})]
    return max(found, key=lambda g: (g.train_images or 0, g.n), default=None)


def _changes(group: Configuration) -> tuple[str, frozenset]:
    """The named recipe closest to `group` (same model first) and every knob, sizes included, it changes there."""
    found = []
    for name, values in RECIPES.items():
        reference = TrainConfig.from_dict(values).to_dict()
        differs = frozenset(
            (k, json.dumps(v, sort_keys=True, default=str))
            for k, v in group.config.items()
            if k not in HOW_IT_RAN and k in reference and reference[k] != v
        )
        found.append((reference.get("model") != group.config.get("model"), len(differs), name, differs))
    _, _, name, differs = min(found, key=lambda f: f[:2])
    return name, differs


def _reference(group: Configuration, groups: list[Configuration], changes: dict) -> Configuration | None:
    """What `group` is an experiment on: the multi-seed configuration of the same recipe and model, trained and
    tested on the same images, whose changes are a strict part of the group's, the most specific one first.
    An ablation arm gets its full recipe, a searched trial the recipe it varies, a shorter seed recipe the seed
    recipe; another architecture gets none (notebook 07 compares those at equal time instead).
    `changes` holds _changes of every group, by id."""
    name, changed = changes[id(group)]
    candidates = [
        r
        for r in groups
        if r is not group
        and r.n >= 2
        and r.config.get("model") == group.config.get("model")
        and r.train_images == group.train_images
        and r.test_images == group.test_images
        and changes[id(r)][0] == name
        and changes[id(r)][1] < changed
    ]
    return max(candidates, key=lambda r: len(changes[id(r)][1]), default=None)


def _experiments_sentence(groups: list[Configuration]) -> str | None:
    """Each multi-seed configuration against the one it changes (see _reference): Welch's test for each (their
    seeds need not match), Holm-corrected across all of them."""
    changes = {id(g): _changes(g) for g in groups}
    pairs = [(g, ref) for g in groups if g.n >= 2 and (ref := _reference(g, groups, changes)) is not None]
    compared = [(g, ref, stats.welch_test(g.accuracies, ref.accuracies)) for g, ref in pairs]
    compared = [c for c in compared if not math.isnan(c[2].p_value)]
    if not compared:
        return None
    adjusted = stats.holm([c[2].p_value for c in compared])
    resolved = [c for c, p in zip(compared, adjusted) if p < 0.05]
    g, ref, c = max(compared, key=lambda c: abs(c[2].difference))
    counts = sorted({x[0].n for x in compared} | {x[1].n for x in compared})
    correction = f", Holm-corrected for the {len(compared)} comparisons" if len(compared) > 1 else ""
    return (
        f"The experiments compared {len(compared)} configuration{'s' if len(compared) > 1 else ''} with the "
        f"configuration each one changes, trained and tested on the same images ({'/'.join(map(str, counts))} seeds "
        f"each): {len(resolved) or 'none'} of them differ{'s' if len(resolved) == 1 else ''} from it by more than "
        f"the seed-to-seed spread (Welch's t-test on test accuracy, p < 0.05{correction}). "
        f"The largest difference is {g.label}, against {ref.label}: {_difference(g, ref)}."
    )


def executive_summary(groups: list[Configuration], smoke: bool = False) -> list[str]:
    """A few sentences, every number computed from `groups`: the best model, the seed baseline, the experiments."""
    lines = ["Smoke run: a small subset for one epoch; the numbers only show that the pipeline works."] if smoke else []
    if not groups:
        return lines + [
            "No run with a test result was found; run the report (`make report`) to train and evaluate one."
        ]
    most = max(g.test_images for g in groups)
    best = max((g for g in groups if g.test_images == most), key=lambda g: g.summary.mean)
    lines.append(f"Best model: {best.label}, {_accuracy(best)} on {most:,} test images.")
    baseline = seed_baseline(groups)
    if baseline is None:
        lines.append("No run of the unchanged seed recipe was found to compare with.")
    elif baseline is best:
        lines.append("It is the seed baseline itself: nothing here beats the seed recipe.")
    else:
        lines.append(
            f"The seed baseline, {baseline.label}, reaches {_accuracy(baseline)} on {baseline.test_images:,} "
            f"test images"
            + (
                f"; the best model is {_difference(best, baseline)} above it."
                if baseline.test_images == best.test_images
                else "."
            )
        )
    if (sentence := _experiments_sentence(groups)) is not None:
        lines.append(sentence)
    return lines


# ----------------------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.5; }
.summary { background: #f4f7fb; border-left: 4px solid #3b6ea5; padding: 0.5rem 1rem; }
table { border-collapse: collapse; } td, th { padding: 0.3rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: 1rem; }
figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #555; }
"""


def _first(folders, relative: str) -> Path | None:
    return next((Path(f) / relative for f in folders if (Path(f) / relative).is_file()), None)


def _figure_caption(name: str) -> str:
    return Path(name).stem.split("_", 1)[-1].replace("_", " ")


def index_html(summary: list[str], notebooks, folders, superseded: tuple[str, ...] = ()) -> str:
    """The landing page: the summary, a table of the reports (both renderings) and each notebook's figures.

    `folders` are searched in order for reports/, notebooks/ and figures/ (the report passes its staging
    folder and then the output folder, so the page describes the folder as it will be once moved into place).
    Figures whose names start with a prefix in `superseded` count only from the first folder: the notebooks
    that made them ran again, so an older one they did not make again (a run since deleted) is gone.
    """
    esc = html.escape
    rows, sections = [], []
    figures = sorted(
        {
            p.name
            for i, f in enumerate(folders)
            for p in (Path(f) / "figures").glob("*.png")
            if i == 0 or not p.name.startswith(superseded)
        }
    )
    for name in notebooks:
        stem = Path(name).stem
        plain, coded = rendering_names(stem)
        if _first(folders, f"reports/{plain}") is None:
            continue
        # the executed copy is not committed: a clone whose report skipped this notebook has only its source
        executed = _first([*folders, project_dir()], f"notebooks/{stem}.ipynb")
        title = notebook_title(nbformat.read(executed, as_version=4), stem) if executed else stem
        rows.append(
            f'<tr><td>{esc(title)}</td><td><a href="reports/{esc(plain)}">report</a></td>'
            f'<td><a href="reports/{esc(coded)}">with code</a></td></tr>'
        )
        own = [f for f in figures if f.startswith(stem.split("_")[0] + "_")]
        if own:
            tiles = "".join(
                f'<figure><a href="figures/{esc(f)}"><img src="figures/{esc(f)}" alt="{esc(_figure_caption(f))}">'
                f"</a><figcaption>{esc(_figure_caption(f))}</figcaption></figure>"
                for f in own
            )
            sections.append(
                f'<h3><a href="reports/{esc(plain)}">{esc(title)}</a></h3><div class="figures">{tiles}</div>'
            )
    paragraphs = "".join(f"<p>{esc(line)}</p>" for line in summary)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>CIFAR-10 results</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>CIFAR-10 results</h1>\n"
        f'<section class="summary">{paragraphs}</section>\n'
        f"<h2>Reports</h2>\n<p>Each notebook as a report to read, and the same with its code.</p>\n"
        f"<table><tr><th>Notebook</th><th>Report</th><th>Code</th></tr>{''.join(rows)}</table>\n"
        f"<h2>Figures</h2>\n{''.join(sections) or '<p>No figures yet.</p>'}\n</body>\n</html>\n"
    )


def write_index(target_dir, summary: list[str], notebooks, folders=None, superseded: tuple[str, ...] = ()) -> Path:
    """Write `target_dir`/index.html (see index_html); `folders` default to `target_dir` alone."""
    target = Path(target_dir) / INDEX
    atomic.write_text(target, index_html(summary, notebooks, folders or [target_dir], superseded))
    return target
