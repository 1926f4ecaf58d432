"""The landing page (outputs/index.html) and the executive summary that opens it, results.md and the README.

The summary states the project's answers, one sentence each, with a link to the report that holds the
evidence: the best model (chosen on validation accuracy, never on test), the seed baseline, then what
notebooks 04-07 resolved, read from the records they write (analysis/headline_records.py; a record that
is absent leaves its sentence out), and the provenance of all of it. Every number comes from the run
folders (metrics.json, or notebook 03's analysis.json for a run trained without a test pass) or from
those records. A difference is named only when its Holm-corrected p is below alpha; otherwise the
sentence says "not resolvable at this budget" (or "equivalent" where a TOST says so). Runs that differ
only in their seed (and in how they ran: device, precision, memory layout, evaluation batch) are one
configuration, summarised over its seeds with a t interval when there are at least two. Nothing here
trains or evaluates.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..analysis import headline_records as H
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
RESULTS_LINK = "results.md"  # where every run's own provenance is listed


@dataclass
class Configuration:
    """Runs of one configuration: their test accuracies (fractions), their metrics, what they were trained on."""

    config: dict
    train_images: int | None
    test_images: int
    folders: list[Path] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def summary(self) -> stats.Summary:
        return stats.summarize(self.accuracies)

    @property
    def validations(self) -> list[float] | None:
        """Each seed's final validation accuracy, or None unless every seed has one."""
        found = [m.get("val_accuracy") for m in self.metrics]
        ok = found and all(isinstance(v, (int, float)) and math.isfinite(v) for v in found)
        return [float(v) for v in found] if ok else None

    @property
    def val_images(self) -> int | None:
        return self.metrics[0].get("val_images") if self.metrics else None

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
        group.metrics.append(metrics)
    return list(groups.values())


# ----------------------------------------------------------------------------- the sentences


@dataclass(frozen=True)
class Headline:
    """One answer: a sentence, and the page (relative to the output folder) that holds its evidence."""

    text: str
    link: str | None = None
    key: str = ""  # what it answers: smoke, best, baseline, 04, 05, 06, 07, provenance

    @property
    def link_text(self) -> str:
        return "report " + Path(self.link).name.split("_")[0] if self.link and "reports/" in self.link else "details"


def _report(stem: str) -> str:
    return f"reports/{rendering_names(stem)[0]}"


def _points(values: list[float]) -> stats.Summary:
    return stats.summarize([100 * v for v in values])


def _mean_text(summary: stats.Summary) -> str:
    return f"{summary.mean:.2f}%"


def _interval(summary: stats.Summary) -> str:
    return f"[{summary.ci_low:.2f}, {summary.ci_high:.2f}]%"


def _tta(group: Configuration) -> str:
    """Whether the scores include test-time augmentation, from the run's own record."""
    tta = group.config.get("tta") or "none"
    if tta == "none":
        return "no test-time augmentation in either score"
    share = group.config.get("tta_share")
    where = f" on {share:.0%} of images" if isinstance(share, float) and share < 1 else ""
    without = [m.get("val_accuracy_no_tta") for m in group.metrics]
    plain = (
        f"; validation {_mean_text(_points(without))} without"
        if without and all(isinstance(v, (int, float)) for v in without)
        else ""
    )
    return f"both scores with test-time augmentation ({tta}{where}{plain})"


def _val_and_test(group: Configuration) -> str:
    """'93.86% validation and 94.03% test accuracy on 10,000 images, ...': n, and a t interval or why there is none."""
    val, test = group.validations, _points(group.accuracies)
    scores = f"{_mean_text(_points(val))} validation and " if val else ""
    scores += f"{_mean_text(test)} test accuracy on {group.test_images:,} images"
    if group.n < 2:
        return f"{scores}, one seed, no interval"
    intervals = f"{_interval(_points(val))} and {_interval(test)}" if val else _interval(test)
    return f"{scores}, means over {group.n} seeds (95% t interval{'s' if val else ''} {intervals})"


def best_on_validation(groups: list[Configuration]) -> tuple[Configuration | None, list[Configuration]]:
    """The configuration with the highest mean validation accuracy, among those scored on the same validation
    images (the most common count) and tested on the most test images; the test accuracy plays no part.
    Returns it and the candidates it was chosen from."""
    scored = [g for g in groups if g.validations is not None and g.val_images]
    if not scored:
        return None, []
    most_test = max(g.test_images for g in scored)
    scored = [g for g in scored if g.test_images == most_test]
    counts = [g.val_images for g in scored]
    val_images = max(set(counts), key=lambda v: (counts.count(v), v))
    candidates = [g for g in scored if g.val_images == val_images]
    return max(candidates, key=lambda g: sum(g.validations) / len(g.validations)), candidates


def seed_baseline(groups: list[Configuration]) -> Configuration | None:
    """The seed recipe unchanged, on the most training images, then with the most seeds."""
    found = [g for g in groups if g.recipe == (SEED_RECIPE, {})]
    return max(found, key=lambda g: (g.train_images or 0, g.n), default=None)


def _best_sentence(best: Configuration, candidates: list[Configuration]) -> Headline:
    among = f"{len(candidates)} tested configurations" if len(candidates) > 1 else "the one tested configuration"
    return Headline(
        f"Best model, chosen on validation accuracy ({best.val_images:,} held-out training images) among {among}; "
        f"the test set chose nothing: {best.label}, {_val_and_test(best)}; {_tta(best)}.",
        _report("03_results_analysis"),
        "best",
    )


def _baseline_sentence(baseline: Configuration | None, best: Configuration | None) -> Headline:
    if baseline is None:
        return Headline("No run of the unchanged seed recipe was found to compare with.", key="baseline")
    if baseline is best:
        return Headline(
            "The best model is the seed baseline itself: nothing here beats the seed recipe on validation.",
            key="baseline",
        )
    return Headline(
        f"Seed baseline: {baseline.label}, {_val_and_test(baseline)}; {_tta(baseline)}.",
        _report("02_training"),
        "baseline",
    )


def _effect(e: H.Effect, unit: str = " points, 95% CI ") -> str:
    """'-3.81 points, 95% CI [-4.45, -3.18]'; with unit " " (where the sentence said what the numbers are)
    '-3.81 [-4.45, -3.18]'."""
    interval = f"{unit}[{e.ci_low:+.2f}, {e.ci_high:+.2f}]" if e.ci_low is not None else " points"
    return f"{e.delta:+.2f}{interval}"


def _seeds(rows: list[H.Effect]) -> str:
    ns = sorted({e.n for e in rows})
    return f"{ns[0]} paired seeds" if len(ns) == 1 else f"{ns[0]}-{ns[-1]} paired seeds"


def _ablation_sentence(r: H.AblationFindings) -> Headline | None:
    if not r.rows:
        return None
    differ = sorted((e for e in r.rows if e.verdict == H.DIFFERS), key=lambda e: e.delta)
    same = [e.arm for e in r.rows if e.verdict == H.EQUIVALENT]
    open_ = [e.arm for e in r.rows if e.verdict not in (H.DIFFERS, H.EQUIVALENT)]
    parts = [
        "; ".join(f"{e.arm} {_effect(e, ' ')}" for e in differ)
        if differ
        else "no change to it is resolved after Holm's correction"
    ]
    if same:
        parts.append(f"equivalent within the ±{r.margin:g}-point margin (TOST): {', '.join(same)}")
    if open_:
        parts.append(f"not resolvable at this budget: {', '.join(open_)}")
    return Headline(
        f"What each piece of the fast recipe buys at the experiments' budget (Δ {r.metric} against the {r.reference}, "
        f"points [95% CI], {_seeds(r.rows)}, Holm-corrected α = {r.alpha:g}): {'; '.join(parts)}.",
        _report(r.NOTEBOOK),
        r.NOTEBOOK[:2],
    )


def _interval_record(i: H.Interval, extra: str = "") -> str:
    """'85.53% (4 seeds, 95% t interval [85.08, 85.97]%)', `extra` added inside the brackets."""
    if i.n < 2 or i.ci_low is None:
        return f"{i.mean:.2f}% ({extra}one seed, no interval)"
    return f"{i.mean:.2f}% ({extra}{i.n} seeds, 95% t interval [{i.ci_low:.2f}, {i.ci_high:.2f}]%)"


def _search_sentence(r: H.SearchFindings) -> Headline:
    v = r.versus_reference
    if v is None:
        verdict = f"found nothing better on validation than the {r.reference} itself"
    elif v.verdict == H.DIFFERS:
        verdict = (
            f"chose {r.chosen} ({r.chosen_knobs}), which {'raises' if v.delta > 0 else 'lowers'} validation accuracy "
            f"against the {r.reference} by {abs(v.delta):.2f} points (95% CI [{v.ci_low:+.2f}, {v.ci_high:+.2f}], "
            f"Holm p = {v.p_holm:.2g}, {v.n} fresh seeds)"
        )
    elif v.verdict == H.EQUIVALENT:
        verdict = (
            f"chose {r.chosen} ({r.chosen_knobs}), equivalent to the {r.reference} within the ±{r.margin:g}-point "
            f"margin ({_effect(v)}, TOST p = {v.tost_p:.2g}, {v.n} fresh seeds)"
        )
    else:
        verdict = (
            f"chose {r.chosen} ({r.chosen_knobs}); against the {r.reference}, {_effect(v)} on {v.n} fresh seeds, "
            f"not resolvable at this budget"
        )
    test = f"; its test accuracy, read once, is {_interval_record(r.chosen_test)}" if r.chosen_test is not None else ""
    return Headline(
        f"The search ({r.trials} Optuna trials scored on validation: {r.complete} complete, {r.pruned} pruned, "
        f"{r.failed} failed) {verdict}{test}.",
        _report(r.NOTEBOOK),
        r.NOTEBOOK[:2],
    )


def _robustness_sentence(r: H.RobustnessFindings) -> Headline | None:
    if not r.models:
        return None
    models = "; ".join(
        f"{m.model} {m.mean_corruption:.2f}% (clean {m.clean:.2f}%, {m.seeds} seed{'s' if m.seeds != 1 else ''})"
        for m in r.models
    )
    parts = [
        f"Under {r.corruptions} corruptions x {len(r.severities)} severities of the first {r.test_images:,} test "
        f"images, mean corruption accuracy is {models}"
    ]
    c = r.comparison
    if c is not None:
        if c.verdict == H.DIFFERS:
            parts.append(f"{c.arm}: {_effect(c)} (Welch p = {c.p_holm:.2g})")
        elif c.verdict == H.NOT_TESTED:
            parts.append(f"{c.arm}: not tested (one seed each)")
        else:
            parts.append(f"{c.arm}: {_effect(c)}, not resolvable at this budget")
    if r.calibration:
        parts.append(
            "temperature scaling fitted on held-out training images moves ECE "
            + ", ".join(
                f"{m.ece_clean_before:.2f}% -> {m.ece_clean_after:.2f}% clean"
                + (
                    f" and {m.ece_corrupted_before:.2f}% -> {m.ece_corrupted_after:.2f}% corrupted"
                    if m.ece_corrupted_before is not None
                    else ""
                )
                + f" for {m.model}"
                for m in r.calibration
            )
        )
    return Headline("; ".join(parts) + ".", _report(r.NOTEBOOK), r.NOTEBOOK[:2])


def _interval_short(i: H.Interval) -> str:
    """'71.20% [70.10, 72.30]', or '71.20%' with one seed."""
    return f"{i.mean:.2f}%" + (f" [{i.ci_low:.2f}, {i.ci_high:.2f}]" if i.ci_low is not None else "")


def _leader(b: H.BudgetLeader) -> str:
    """One budget's answer, compact: the leader on validation with its interval, its test accuracy read once, and
    the runner-up only as far as the test resolved it."""
    epochs = f"{b.epochs} epoch{'s' if b.epochs != 1 else ''}"
    said = f"{b.budget_s:g} s: {b.architecture} ({epochs}) {_interval_short(b.accuracy)}"
    if b.test is not None:
        said += f", test {b.test.mean:.2f}%"
    v = b.versus_runner_up
    if b.runner_up is None:
        return said + ", the only one to finish an epoch"
    if v is not None and v.verdict == H.DIFFERS:
        return f"{said}, above {b.runner_up} by {_effect(v, ' ')} (Holm p = {v.p_holm:.2g})"
    if v is not None and v.verdict == H.NOT_TESTED:
        return f"{said}, beside {b.runner_up}'s {b.runner_up_accuracy.mean:.2f}% (one seed, not tested)"
    return f"{said}, not resolvable against {b.runner_up}'s {b.runner_up_accuracy.mean:.2f}%"


def _architecture_sentence(r: H.ArchitectureFindings) -> Headline | None:
    if not r.budgets:
        return None
    parts = [f"{b.budget_s:g} s: nothing finishes" if b.architecture is None else _leader(b) for b in r.budgets]
    seeds = sorted({b.accuracy.n for b in r.budgets if b.accuracy is not None})
    n = f"{seeds[0]} seeds" if len(seeds) == 1 else "seeds as stated"
    where = f" of {r.sized_on}" if r.sized_on else ""
    return Headline(
        f"At matched training-time budgets{where} (epochs that fit; leader on validation, {n}, 95% t intervals; "
        f"test read once; differences in points, Welch): "
        f"{'; '.join(parts)}.",
        _report(r.NOTEBOOK),
        r.NOTEBOOK[:2],
    )


def _commit(commit: str) -> str:
    short, _, rest = commit.partition("+")
    return short[:7] + (f"+{rest}" if rest else "")


def _machine(name: str) -> str:
    """A recorded machine name, without trademark signs; its ISA class named as such."""
    name = name.replace("(R)", "").replace("(TM)", "").replace("  ", " ")
    head, _, isa = name.rpartition(" (")
    return f"{head}, ISA class {isa.rstrip(')')}" if head and isa.endswith(")") else name


def _provenance_sentence(p: H.Provenance) -> Headline | None:
    if not p.runs:
        return None
    when = p.first_date if p.first_date == p.last_date else f"{p.first_date} to {p.last_date}"
    commits = [_commit(c) for c in p.commits]
    # Beyond three, the count: the full list is one click away (results.md), and the first screen has no room for it.
    shown = ", ".join(commits) if len(commits) <= 3 else f"{len(commits)} commits ({', '.join(commits[:2])}, ...)"
    machines = (
        f"one machine, {_machine(p.machines[0])}"
        if len(p.machines) == 1
        else f"{len(p.machines)} machines ({'; '.join(map(_machine, p.machines))})"
        if p.machines
        else "an unrecorded machine"
    )
    precision = " and ".join(p.precisions) or "an unrecorded precision"
    return Headline(
        f"Provenance: these answers come from {p.runs} run record{'s' if p.runs != 1 else ''} trained {when} "
        f"at {'commit ' if len(commits) == 1 else 'commits ' if len(commits) <= 3 else ''}{shown or 'an unrecorded commit'} "
        f"on {machines}, in {precision}.",
        RESULTS_LINK,
        "provenance",
    )


def executive_summary(groups: list[Configuration], smoke: bool = False, findings_dir=None) -> list[Headline]:
    """The answers, one Headline each, every number computed from `groups` and from the records notebooks 04-07
    wrote under `findings_dir` (an output folder; None: none read): the best model (on validation), the seed
    baseline, the ablation, the search, robustness and calibration, the architectures, and their provenance."""
    lines = (
        [
            Headline(
                "Smoke run: a small subset for one epoch; the numbers only show that the pipeline works.", key="smoke"
            )
        ]
        if smoke
        else []
    )
    if not groups:
        return lines + [
            Headline("No run with a test result was found; run the report (`make report`) to train and evaluate one.")
        ]
    best, candidates = best_on_validation(groups)
    baseline = seed_baseline(groups)
    if best is None:
        lines.append(Headline("No tested run has a validation score, so no model is chosen as the best.", key="best"))
    else:
        lines.append(_best_sentence(best, candidates))
    lines.append(_baseline_sentence(baseline, best))
    used = [*(best.folders if best else []), *(baseline.folders if baseline else [])]
    provenance = H.Provenance.from_folders(used)
    sentences = {
        H.AblationFindings: _ablation_sentence,
        H.SearchFindings: _search_sentence,
        H.RobustnessFindings: _robustness_sentence,
        H.ArchitectureFindings: _architecture_sentence,
    }
    for kind, sentence in sentences.items():
        record = H.read(kind, findings_dir) if findings_dir is not None else None
        if record is None:
            continue
        if (line := sentence(record)) is not None:
            lines.append(line)
            provenance = provenance.merge(record.provenance)
    if (line := _provenance_sentence(provenance)) is not None:
        # First, under the title: where and when the answers below were made is what a reader checks first, and it
        # must be on the first screen however long the answers grow.
        lines.insert(1 if smoke else 0, line)
    return lines


def with_existing_links(summary: list[Headline], folders, made=()) -> list[Headline]:
    """The summary with each link kept only where its page exists in one of `folders`, or is among the pages
    `made` (relative paths the caller is writing now): a report skipped, or not yet made, is not linked."""
    return [
        h
        if h.link is None or h.link in made or any((Path(f) / h.link).is_file() for f in folders)
        else Headline(h.text, None, h.key)
        for h in summary
    ]


def markdown_lines(summary: list[Headline], prefix: str = "") -> list[str]:
    """The summary as markdown list items, each link relative to a page `prefix` away from the output folder."""
    return [f"- {h.text}" + (f" ([{h.link_text}]({prefix}{h.link}))" if h.link else "") for h in summary]


# ----------------------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.5; }
h1 { margin: 0 0 0.5rem; }
.summary { background: #f4f7fb; border-left: 4px solid #3b6ea5; padding: 0.4rem 1rem; }
.summary ul { margin: 0; padding-left: 1.1rem; } .summary li { margin: 0.35rem 0; }
.summary a { white-space: nowrap; }
table { border-collapse: collapse; } td, th { padding: 0.3rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: 1rem; }
figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #555; }
"""


def _first(folders, relative: str) -> Path | None:
    return next((Path(f) / relative for f in folders if (Path(f) / relative).is_file()), None)


def _figure_caption(name: str) -> str:
    return Path(name).stem.split("_", 1)[-1].replace("_", " ")


def index_html(summary: list[Headline | str], notebooks, folders, superseded: tuple[str, ...] = ()) -> str:
    """The landing page: the summary (one item per answer, each linked to its report where that exists), a table
    of the reports (both renderings) and each notebook's figures.

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
    summary = with_existing_links([Headline(h) if isinstance(h, str) else h for h in summary], folders)
    items = "".join(
        f"<li>{esc(h.text)}" + (f' <a href="{esc(h.link)}">{esc(h.link_text)}</a>' if h.link else "") + "</li>"
        for h in summary
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>CIFAR-10 results</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>CIFAR-10 results</h1>\n"
        f'<section class="summary"><ul>{items}</ul></section>\n'
        f"<h2>Reports</h2>\n<p>Each notebook as a report to read, and the same with its code.</p>\n"
        f"<table><tr><th>Notebook</th><th>Report</th><th>Code</th></tr>{''.join(rows)}</table>\n"
        f"<h2>Figures</h2>\n{''.join(sections) or '<p>No figures yet.</p>'}\n</body>\n</html>\n"
    )


def write_index(
    target_dir, summary: list[Headline | str], notebooks, folders=None, superseded: tuple[str, ...] = ()
) -> Path:
    """Write `target_dir`/index.html (see index_html); `folders` default to `target_dir` alone."""
    target = Path(target_dir) / INDEX
    atomic.write_text(target, index_html(summary, notebooks, folders or [target_dir], superseded))
    return target
