"""The machine-readable answers of notebooks 04-07: one small JSON file each, read by the landing page.

Each notebook writes its record beside its results.md section, in OUTPUT_DIR/experiments/:

    04_findings.json   AblationFindings      what each piece of the fast recipe buys (paired, Holm, TOST)
    05_findings.json   SearchFindings        the search's chosen configuration against the recipe, and its test score
    06_findings.json   RobustnessFindings    mean corruption accuracy per model, and calibration before / after T
    07_findings.json   ArchitectureFindings  which architecture leads within each training-time budget

The landing page (report/landing.py) turns each record into one sentence; a record that is absent
leaves its sentence out, and nothing is ever read back from the prose of a results.md section.
Numbers are stored as computed: accuracies and differences in points (percent), p-values as they
are. Every comparison carries its verdict, decided here and only here (`verdict_of`): "differs"
only when the Holm-corrected p is below alpha, "equivalent" only when TOST says so, and otherwise
"not resolvable" (at this budget), so no reader can turn an unresolved difference into a claim.

A notebook builds its record from what it already computed, e.g. notebook 04:

    record = headline_records.ablation_record(table, A.FULL, budget.describe(), EQUIVALENCE_MARGIN,
                                              test_summary, [store / r for r in frame["run"]])
    headline_records.write(record, out)
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CifarError
from ..runs import atomic, run_files
from . import stats

SCHEMA = 1
FOLDER = "experiments"  # under the output folder, beside the notebooks' results.md sections
ALPHA = 0.05

DIFFERS, EQUIVALENT, UNRESOLVED, NOT_TESTED = "differs", "equivalent", "not resolvable", "not tested"


def _number(value) -> float | None:
    """A float for JSON: None for NaN / missing (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def verdict_of(p_holm: float | None, equivalent: bool = False, alpha: float = ALPHA) -> str:
    """The one place a comparison becomes a word: a difference only below alpha after Holm's correction."""
    if p_holm is not None and not math.isnan(p_holm) and p_holm < alpha:
        return DIFFERS
    if equivalent:
        return EQUIVALENT
    return UNRESOLVED if p_holm is not None and not math.isnan(p_holm) else NOT_TESTED


# ----------------------------------------------------------------------------- the pieces


@dataclass
class Provenance:
    """Where the runs behind a record came from: how many, when, at which commits, on which machines, in which
    precision. Read from each run's metrics.json (its `provenance`), never typed."""

    runs: int = 0
    first_date: str | None = None
    last_date: str | None = None
    commits: list[str] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)  # "CPU model (ISA class)"
    precisions: list[str] = field(default_factory=list)

    @classmethod
    def from_folders(cls, folders) -> "Provenance":
        found = []
        for folder in dict.fromkeys(map(Path, folders)):
            metrics = folder / run_files.METRICS
            if metrics.is_file():
                found.append(run_files.read_json(metrics).get("provenance") or {})
        return cls.from_dicts(found)

    @classmethod
    def from_dicts(cls, provenances) -> "Provenance":
        provenances = [p for p in provenances if p]  # a record without provenance tells nothing of where it ran
        dates = sorted(p["date"][:10] for p in provenances if p.get("date"))
        return cls(
            runs=len(provenances),
            first_date=dates[0] if dates else None,
            last_date=dates[-1] if dates else None,
            commits=sorted({p["git_commit"] for p in provenances if p.get("git_commit")}),
            machines=sorted({machine(p) for p in provenances if machine(p)}),
            precisions=sorted({p["precision"] for p in provenances if p.get("precision")}),
        )

    def merge(self, *others: "Provenance") -> "Provenance":
        every = [self, *others]
        dates = sorted(d for p in every for d in (p.first_date, p.last_date) if d)
        return Provenance(
            runs=sum(p.runs for p in every),
            first_date=dates[0] if dates else None,
            last_date=dates[-1] if dates else None,
            commits=sorted({c for p in every for c in p.commits}),
            machines=sorted({m for p in every for m in p.machines}),
            precisions=sorted({x for p in every for x in p.precisions}),
        )


def machine(provenance: dict) -> str | None:
    """A run's machine as the records name it: the CPU model and its ISA class (or the device's name)."""
    name = provenance.get("cpu") or provenance.get("device_name") or provenance.get("device")
    if not name:
        return None
    isa = provenance.get("cpu_isa")
    return f"{name} ({isa})" if isa else str(name)


@dataclass
class Interval:
    """A mean over seeds, in points, with its 95% t interval (None with one seed) and SD."""

    mean: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    sd: float | None = None

    @classmethod
    def of(cls, summary: stats.Summary, scale: float = 100.0) -> "Interval":
        return cls(
            mean=scale * summary.mean,
            n=summary.n,
            ci_low=_number(scale * summary.ci_low),
            ci_high=_number(scale * summary.ci_high),
            sd=_number(scale * summary.std),
        )


@dataclass
class Effect:
    """One arm against the reference, in points: the difference, its 95% interval, Holm's p, TOST and the verdict."""

    arm: str
    n: int
    delta: float
    ci_low: float | None
    ci_high: float | None
    p_holm: float | None
    verdict: str
    tost_p: float | None = None
    detectable: float | None = None  # the minimal detectable effect at this n (80% power), points

    @classmethod
    def from_row(cls, arm, row, alpha: float = ALPHA) -> "Effect":
        """A row of comparisons.compare_arms's table (its columns: n, delta, ci_low, ci_high, p_holm, tost_p,
        equivalent, detectable)."""
        p_holm = _number(row["p_holm"])
        return cls(
            arm=str(arm),
            n=int(row["n"]),
            delta=float(row["delta"]),
            ci_low=_number(row["ci_low"]),
            ci_high=_number(row["ci_high"]),
            p_holm=p_holm,
            verdict=verdict_of(p_holm, bool(row.get("equivalent", False)), alpha),
            tost_p=_number(row.get("tost_p")),
            detectable=_number(row.get("detectable")),
        )


def effects(table, alpha: float = ALPHA) -> list[Effect]:
    """Every row of a comparisons.compare_arms table, in its order."""
    return [Effect.from_row(arm, row, alpha) for arm, row in table.iterrows()]


# ----------------------------------------------------------------------------- one record per notebook


@dataclass
class AblationFindings:
    """Notebook 04: each arm (the full recipe with one piece changed) against the full recipe, on validation."""

    FILE = "04_findings.json"
    NOTEBOOK = "04_augmentation_ablation"

    reference: str
    metric: str
    budget: str
    margin: float  # the TOST margin, points
    rows: list[Effect]
    reference_test: Interval | None = None  # the reference's test accuracy, read once
    alpha: float = ALPHA
    provenance: Provenance = field(default_factory=Provenance)


@dataclass
class SearchFindings:
    """Notebook 05: the study, the configuration chosen on validation (fresh seeds) against the recipe, its test."""

    FILE = "05_findings.json"
    NOTEBOOK = "05_hyperparameter_search"

    trials: int
    complete: int
    pruned: int
    failed: int
    reference: str
    chosen: str
    chosen_knobs: str
    chosen_validation: Interval
    chosen_test: Interval | None
    versus_reference: Effect | None  # None: the chosen configuration is the reference itself
    margin: float
    best_single_trial: float | None = None  # validation %, one seed: optimistic by construction
    alpha: float = ALPHA
    provenance: Provenance = field(default_factory=Provenance)


@dataclass
class ModelRobustness:
    model: str
    seeds: int
    clean: float  # accuracy %, mean over seeds
    mean_corruption: float
    relative_drop: float  # %
    hardest: str
    hardest_accuracy: float


@dataclass
class ModelCalibration:
    model: str
    temperature: float
    fitted_on: str
    ece_clean_before: float  # %
    ece_clean_after: float
    ece_corrupted_before: float | None = None
    ece_corrupted_after: float | None = None


@dataclass
class RobustnessFindings:
    """Notebook 06: mean corruption accuracy per model, their comparison, and temperature scaling's effect on ECE."""

    FILE = "06_findings.json"
    NOTEBOOK = "06_robustness"

    test_images: int
    corruptions: int
    severities: list[int]
    models: list[ModelRobustness]
    comparison: Effect | None  # the highest against the lowest mean corruption accuracy (arm = "A vs B")
    calibration: list[ModelCalibration] = field(default_factory=list)
    alpha: float = ALPHA
    provenance: Provenance = field(default_factory=Provenance)


@dataclass
class BudgetLeader:
    """Within `budget_s` seconds of training on the machine that sized the budgets: the architecture with the best
    validation accuracy, its test accuracy (read once), and the runner-up (accuracies in points)."""

    budget_s: float
    architecture: str | None  # None: no architecture finished within the budget
    epochs: int | None = None
    seconds: float | None = None  # median measured training seconds
    accuracy: Interval | None = None  # validation
    runner_up: str | None = None
    runner_up_accuracy: Interval | None = None
    versus_runner_up: Effect | None = None  # Welch on validation accuracy, Holm over the budgets
    test: Interval | None = None  # the leader's test accuracy, read once


@dataclass
class ArchitectureFindings:
    """Notebook 07: which architecture leads on validation within each matched training-time budget."""

    FILE = "07_findings.json"
    NOTEBOOK = "07_architectures"

    budgets: list[BudgetLeader]
    alpha: float = ALPHA
    sized_on: str | None = None  # the machine whose measured epoch costs sized the budgets
    excluded: list[str] = field(default_factory=list)  # architectures out of the table, each with its reason
    provenance: Provenance = field(default_factory=Provenance)


RECORDS = (AblationFindings, SearchFindings, RobustnessFindings, ArchitectureFindings)


# ----------------------------------------------------------------------------- writing and reading


def path(kind, out_dir) -> Path:
    return Path(out_dir) / FOLDER / kind.FILE


def write(record, out_dir) -> Path:
    """Write `record` to OUTPUT_DIR/experiments/<its FILE> (atomically), with the schema version and its kind."""
    target = path(type(record), out_dir)
    payload = {"schema": SCHEMA, "kind": type(record).__name__, **dataclasses.asdict(record)}
    atomic.write_text(target, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    return target


def _build(kind, values):
    """A dataclass from its asdict() form, nested dataclasses (and lists of them) included."""
    hints = {f.name: f.type for f in dataclasses.fields(kind)}
    nested = {
        "Provenance": Provenance,
        "Interval": Interval,
        "Effect": Effect,
        "ModelRobustness": ModelRobustness,
        "ModelCalibration": ModelCalibration,
        "BudgetLeader": BudgetLeader,
    }
    built = {}
    for name, value in values.items():
        if name not in hints:
            raise TypeError(f"unknown field {name!r}")
        inner = next((cls for key, cls in nested.items() if key in str(hints[name])), None)
        if inner is None or value is None:
            built[name] = value
        elif isinstance(value, list):
            built[name] = [_build(inner, v) for v in value]
        else:
            built[name] = _build(inner, value)
    return kind(**built)


def read(kind, out_dir):
    """The record of `kind` in `out_dir`, or None when the notebook has not written one. A damaged file or another
    schema is an error that names the file (the report is what writes these files)."""
    target = path(kind, out_dir)
    if not target.is_file():
        return None
    try:
        values = json.loads(target.read_text(encoding="utf-8"))
        if values.pop("schema", None) != SCHEMA or values.pop("kind", None) != kind.__name__:
            raise ValueError(f"not a schema-{SCHEMA} {kind.__name__}")
        return _build(kind, values)
    except (ValueError, TypeError, KeyError) as exc:
        raise CifarError(f"{target} is not a record this version reads ({exc}); run the report again") from None


# ----------------------------------------------------------------------------- what the notebooks call


def ablation_record(
    table, reference: str, budget: str, margin: float, reference_test: stats.Summary | None, folders, alpha=ALPHA
) -> AblationFindings:
    """Notebook 04's record from compare_arms's table (validation, paired by seed); `margin` as a fraction."""
    return AblationFindings(
        reference=str(reference),
        metric="validation accuracy",
        budget=budget,
        margin=100 * margin,
        rows=effects(table, alpha),
        reference_test=Interval.of(reference_test) if reference_test is not None else None,
        alpha=alpha,
        provenance=Provenance.from_folders(folders),
    )


def search_record(
    trials,
    reference: str,
    chosen: str,
    chosen_knobs: str,
    chosen_validation: stats.Summary,
    chosen_test: stats.Summary | None,
    table,
    margin: float,
    folders,
    alpha=ALPHA,
) -> SearchFindings:
    """Notebook 05's record: `trials` is search.trials_table's frame (state, value), `table` compare_arms's against
    the recipe (or None), `margin` a fraction."""
    complete = trials[trials["state"] == "COMPLETE"]
    versus = None
    if table is not None and chosen in table.index:
        versus = Effect.from_row(chosen, table.loc[chosen], alpha)
    return SearchFindings(
        trials=len(trials),
        complete=len(complete),
        pruned=int((trials["state"] == "PRUNED").sum()),
        failed=int((trials["state"] == "FAIL").sum()),
        reference=str(reference),
        chosen=str(chosen),
        chosen_knobs=chosen_knobs,
        chosen_validation=Interval.of(chosen_validation),
        chosen_test=Interval.of(chosen_test) if chosen_test is not None else None,
        versus_reference=versus,
        margin=100 * margin,
        best_single_trial=_number(100 * complete["value"].max()) if len(complete) else None,
        alpha=alpha,
        provenance=Provenance.from_folders(folders),
    )


def robustness_record(
    summary, frame, calibration, evaluated, n_images: int, folders, alpha=ALPHA
) -> RobustnessFindings:
    """Notebook 06's record from robustness.robustness_summary, accuracy_frame and calibration_frame's frames and
    the Evaluated runs. Models with several seeds are compared with Welch's test; with one seed, not tested."""
    models = []
    for group, part in summary.groupby("group", sort=False):
        corrupted = frame[(frame.group == group) & (frame.corruption != "clean")]
        per_corruption = corrupted.groupby("corruption")["accuracy"].mean()
        models.append(
            ModelRobustness(
                model=str(group),
                seeds=len(part),
                clean=100 * float(part["clean"].mean()),
                mean_corruption=100 * float(part["mca"].mean()),
                relative_drop=100 * float(part["relative_drop"].mean()),
                hardest=str(per_corruption.idxmin()),
                hardest_accuracy=100 * float(per_corruption.min()),
            )
        )
    comparison = None
    if len(models) > 1:
        best = max(models, key=lambda m: m.mean_corruption)
        worst = min(models, key=lambda m: m.mean_corruption)
        a, b = (summary.loc[summary.group == m.model, "mca"].astype(float) for m in (best, worst))
        label = f"{best.model} vs {worst.model}"
        if len(a) > 1 and len(b) > 1:
            c = stats.welch_test(a, b)
            p = _number(c.p_value)  # one comparison: Holm leaves it as it is
            comparison = Effect(
                label,
                min(len(a), len(b)),
                100 * c.difference,
                _number(100 * c.ci_low),
                _number(100 * c.ci_high),
                p,
                verdict_of(p, False, alpha),
            )
        else:
            comparison = Effect(
                label, min(len(a), len(b)), 100 * float(a.mean() - b.mean()), None, None, None, NOT_TESTED
            )
    calibrated = []
    for ev in evaluated:
        if ev.temperature is None:
            continue
        rows = calibration[calibration.run == ev.name].set_index("test set")
        corrupted = "all corrupted" in rows.index
        calibrated.append(
            ModelCalibration(
                model=ev.name,
                temperature=float(ev.temperature),
                fitted_on=str(ev.held_out),
                ece_clean_before=100 * float(rows.loc["clean", "ece before"]),
                ece_clean_after=100 * float(rows.loc["clean", "ece after"]),
                ece_corrupted_before=100 * float(rows.loc["all corrupted", "ece before"]) if corrupted else None,
                ece_corrupted_after=100 * float(rows.loc["all corrupted", "ece after"]) if corrupted else None,
            )
        )
    corruptions = frame[frame.corruption != "clean"]
    return RobustnessFindings(
        test_images=int(n_images),
        corruptions=int(corruptions["corruption"].nunique()),
        severities=sorted(int(s) for s in corruptions["severity"].unique()),
        models=models,
        comparison=comparison,
        calibration=calibrated,
        alpha=alpha,
        provenance=Provenance.from_folders(folders),
    )


def architecture_record(table, tests, test_frame, frame, folders, sized_on=None, excluded=(), alpha=ALPHA):
    """Notebook 07's record from architecture_comparison's budget table (budget s, architecture, epochs, fits, rank,
    median train s), its leader_tests (budget -> LeaderTest), the leaders' test accuracies (`test_frame`: architecture,
    epochs, test_accuracy per run) and the runs' frame (architecture, epochs, val_accuracy). Ranked on validation like
    the notebook; the test set chooses nothing."""
    leaders = []

    def interval(rows, column):
        values = rows[column].astype(float).tolist()
        return Interval.of(stats.summarize(values)) if len(values) > 1 else Interval(100 * values[0], 1)

    def runs(source, row):
        return source[(source["architecture"] == row["architecture"]) & (source["epochs"] == row["epochs"])]

    for budget, rows in table.groupby("budget s", sort=True):
        ranked = rows[rows["fits"]].sort_values("rank")
        if ranked.empty:
            leaders.append(BudgetLeader(float(budget), None))
            continue
        best = ranked.iloc[0]
        leader = BudgetLeader(
            float(budget),
            str(best["architecture"]),
            int(best["epochs"]),
            float(best["median train s"]),
            interval(runs(frame, best), "val_accuracy"),
        )
        tested = runs(test_frame, best)
        if len(tested):
            leader.test = interval(tested, "test_accuracy")
        if len(ranked) > 1:
            runner = ranked.iloc[1]
            leader.runner_up = str(runner["architecture"])
            leader.runner_up_accuracy = interval(runs(frame, runner), "val_accuracy")
            t = tests[budget]
            leader.versus_runner_up = Effect(
                f"{t.leader} vs {t.runner_up}",
                t.n,
                t.delta,
                _number(t.ci_low),
                _number(t.ci_high),
                t.p_holm,
                NOT_TESTED if t.p_holm is None else verdict_of(t.p_holm, False, alpha),
                detectable=_number(t.detectable),
            )
        leaders.append(leader)
    return ArchitectureFindings(
        budgets=leaders,
        alpha=alpha,
        sized_on=sized_on,
        excluded=list(excluded),
        provenance=Provenance.from_folders(folders),
    )
