"""Notebooks 04-07's machine-readable findings (analysis/headline_records.py): what they hold, that they round-trip
through JSON, and that a verdict says "differs" only below alpha after Holm's correction."""

import json
import math

import pandas as pd
import pytest

from cifar_utils.analysis import comparisons as C
from cifar_utils.analysis import headline_records as H
from cifar_utils.analysis import robustness as R
from cifar_utils.analysis import stats
from cifar_utils.errors import CifarError
from cifar_utils.runs import run_files


def test_the_verdict_is_a_difference_only_below_alpha_after_holm():
    assert H.verdict_of(0.049) == H.DIFFERS
    assert H.verdict_of(0.062) == H.UNRESOLVED and H.verdict_of(0.062, equivalent=True) == H.EQUIVALENT
    assert H.verdict_of(None) == H.NOT_TESTED and H.verdict_of(math.nan) == H.NOT_TESTED
    assert H.verdict_of(0.04, alpha=0.01) == H.UNRESOLVED


def _run(folder, date, commit, cpu, isa, precision):
    folder.mkdir(parents=True)
    prov = {"date": f"{date}T00:00:00+00:00", "git_commit": commit, "cpu": cpu, "cpu_isa": isa, "precision": precision}
    run_files.write_json(folder / run_files.METRICS, {"provenance": prov})
    return folder


def test_provenance_is_read_from_the_runs_records(tmp_path):
    folders = [
        _run(tmp_path / "a", "2026-12-08", "2ae0554a3d2a", "AMD EPYC", "avx512_bf16", "bf16"),
        _run(tmp_path / "b", "2026-12-01", "054515fb3cdc", "Intel(R) Xeon(R) Processor", "amx", "bf16"),
        tmp_path / "missing",
    ]
    p = H.Provenance.from_folders(folders + folders[:1])  # a folder named twice counts once
    assert (p.runs, p.first_date, p.last_date) == (2, "2026-12-01", "2026-12-08")
    assert p.commits == ["054515fb3cdc", "2ae0554a3d2a"] and p.precisions == ["bf16"]
    assert p.machines == ["AMD EPYC (avx512_bf16)", "Intel(R) Xeon(R) Processor (amx)"]
    merged = p.merge(H.Provenance(1, "2026-12-09", "2026-12-09", ["c"], ["Zen 3 (avx2)"], ["fp32"]))
    assert merged.runs == 3 and merged.last_date == "2026-12-09" and merged.precisions == ["bf16", "fp32"]


def _ablation_table() -> pd.DataFrame:
    values = pd.DataFrame(
        [
            {"arm": arm, "seed": s, "val_accuracy": v}
            for arm, vals in {
                "full recipe": [0.850, 0.860, 0.855, 0.858],
                "no whitening": [0.835, 0.846, 0.838, 0.843],
                "augment none": [0.851, 0.859, 0.856, 0.857],
            }.items()
            for s, v in enumerate(vals, 1)
        ]
    )
    return C.compare_arms(values, "arm", "full recipe", value="val_accuracy", delta=0.01, what="validation accuracy")


def test_every_record_round_trips_through_json(tmp_path):
    table = _ablation_table()
    record = H.ablation_record(table, "full recipe", "2 epochs", 0.01, stats.summarize([0.85, 0.86, 0.855]), [])
    assert [e.verdict for e in record.rows] == [H.DIFFERS, H.EQUIVALENT] and record.margin == 1.0
    assert record.rows[0].delta == pytest.approx(table.loc["no whitening", "delta"])  # points, as the table has them
    one_seed = H.Interval.of(stats.summarize([0.9]))
    assert (one_seed.mean, one_seed.n, one_seed.ci_low, one_seed.sd) == (pytest.approx(90.0), 1, None, None)
    records = [
        record,
        H.SearchFindings(3, 2, 1, 0, "fast recipe", "trial 1", "lr 0.1", one_seed, None, None, 1.0),
        H.RobustnessFindings(200, 2, [1, 5], [H.ModelRobustness("m", 1, 80.0, 60.0, 25.0, "noise", 30.0)], None),
        H.ArchitectureFindings([H.BudgetLeader(60.0, None), H.BudgetLeader(300.0, "fast", 2, 100.0, one_seed)]),
    ]
    for rec in records:
        path = H.write(rec, tmp_path)
        assert path == tmp_path / "experiments" / type(rec).FILE
        assert json.loads(path.read_text())["schema"] == H.SCHEMA  # strict JSON: no NaN
        assert H.read(type(rec), tmp_path) == rec
    assert H.read(H.AblationFindings, tmp_path / "elsewhere") is None  # not written: no record, no sentence
    path = H.path(H.SearchFindings, tmp_path)
    path.write_text(path.read_text().replace('"schema": 1', '"schema": 99'))
    with pytest.raises(CifarError, match="05_findings.json is not a record this version reads"):
        H.read(H.SearchFindings, tmp_path)


def test_the_search_record_reads_the_trials_and_the_comparison():
    trials = pd.DataFrame({"state": ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"], "value": [0.86, 0.84, None, None]})
    table = _ablation_table().rename(index={"augment none": "trial 7"})
    r = H.search_record(
        trials, "full recipe", "trial 7", "lr 0.1", stats.summarize([0.85, 0.86]), None, table, 0.01, []
    )
    assert (r.trials, r.complete, r.pruned, r.failed, r.best_single_trial) == (4, 2, 1, 1, pytest.approx(86.0))
    assert r.versus_reference.verdict == H.EQUIVALENT and r.chosen_test is None
    assert (
        H.search_record(
            trials, "full recipe", "full recipe", "", stats.summarize([0.85]), None, table, 0.01, []
        ).versus_reference
        is None
    )


def test_the_architecture_record_carries_each_budgets_leader_its_test_and_the_holm_corrected_comparison():
    from cifar_utils.analysis import architecture_comparison as AR

    rows = [
        {"architecture": a, "epochs": e, "seed": 21 + i, "run": f"{a}{e}{i}", "val_accuracy": v,
         "train_seconds": t, "trained_on": "AMD EPYC"}
        for a, e, t, vals in (
            ("seed_cnn", 1, 20, [0.50, 0.52, 0.51]),
            ("seed_cnn", 6, 90, [0.75, 0.76, 0.77]),
            ("fast_narrow", 7, 95, [0.900, 0.905, 0.910]),
            ("fast", 1, 140, [0.95, 0.95, 0.96]),
        )
        for i, v in enumerate(vals)
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    p = AR.plan(budgets={30: {"seed_cnn": 1}, 120: {"seed_cnn": 6, "fast_narrow": 7, "fast": 1}})
    table = AR.budget_table(frame, p)
    tests = AR.leader_tests(table, frame)
    test_frame = pd.DataFrame({"architecture": "fast_narrow", "epochs": 7, "test_accuracy": [0.89, 0.90, 0.91]})
    r = H.architecture_record(table, tests, test_frame, frame, [], "a machine", ["resnet18 is out: slow"])
    alone, b120 = r.budgets
    assert (alone.architecture, alone.runner_up, alone.test) == ("seed_cnn", None, None)
    assert (b120.architecture, b120.runner_up) == ("fast_narrow", "seed_cnn")  # fast ran over 120 s: unranked
    assert b120.test.mean == pytest.approx(90.0) and b120.test.n == 3
    p_one = stats.welch_test([0.900, 0.905, 0.910], [0.75, 0.76, 0.77]).p_value  # one comparison: Holm = raw
    assert b120.versus_runner_up.p_holm == pytest.approx(p_one) and b120.versus_runner_up.verdict == H.DIFFERS
    assert r.sized_on == "a machine" and r.excluded == ["resnet18 is out: slow"]


def test_the_robustness_record_compares_models_only_with_several_seeds():
    frame = pd.DataFrame(
        [
            {"run": f"{g}{s}", "group": g, "seed": s, "corruption": c, "family": c, "severity": sev, "accuracy": acc}
            for g, base in (("a", 0.8), ("b", 0.9))
            for s in (1, 2)
            for c, sev, acc in (("clean", 0, base), ("noise", 1, base - 0.2 - s / 100), ("blur", 1, base - 0.1))
        ]
    )
    summary = R.robustness_summary(frame)
    r = H.robustness_record(summary, frame, pd.DataFrame(), [], 200, [])
    assert [m.model for m in r.models] == ["a", "b"] and r.models[0].hardest == "noise" and r.corruptions == 2
    assert r.comparison.arm == "b vs a" and r.comparison.verdict == H.DIFFERS
    single = summary[summary.seed == 1]
    r = H.robustness_record(single, frame[frame.seed == 1], pd.DataFrame(), [], 200, [])
    assert r.comparison.verdict == H.NOT_TESTED and r.comparison.p_holm is None
