"""Notebook 07's design: each architecture sized to a time budget, ranked on validation, tested against the
runner-up, the test set read once for the leader, excluded architectures named with their reason."""

import pandas as pd
import pytest

from cifar_utils.analysis import architecture_comparison as AR
from cifar_utils.analysis import stats
from cifar_utils.analysis import stats_power as P
from cifar_utils.errors import ConfigError

BUDGETS = {30: {"seed_cnn": 1, "fast_narrow": 1}, 120: {"seed_cnn": 6, "fast_narrow": 7, "fast": 1}}


def test_each_architecture_trains_with_its_own_recipe_on_the_same_split_and_its_own_seeds():
    p = AR.plan(budgets=BUDGETS)
    assert p.seeds == (21, 22, 23) and p.val_size == 5000 and list(p.budgets) == [30.0, 120.0]
    seed = AR.run_config(p, "seed_cnn", 6, 21)
    assert (seed.model, seed.optimizer, seed.lr, seed.epochs, seed.batch_size) == ("seed_cnn", "adam", 1e-3, 6, 128)
    narrow = AR.run_config(p, "fast_narrow", 7, 22)
    assert (narrow.model, narrow.optimizer, narrow.epochs, narrow.batch_size) == ("fast", "muon", 7, 500)
    assert narrow.model_kwargs["widths"] == [32, 64, 64]
    wide = AR.run_config(p, "fast", 1, 23)
    assert "widths" not in (wide.model_kwargs or {}) and wide.batch_size == 500
    resnet = AR.run_config(p, "resnet18", 1, 1)
    assert (resnet.model, resnet.optimizer, resnet.weight_decay, resnet.augment) == (
        "resnet18",
        "sgd",
        5e-4,
        "flip+translate",
    )
    configs, labels = AR.runs_to_train(p)
    assert len(configs) == 5 * 3 and labels[0] == {"architecture": "seed_cnn"}  # five configurations, three seeds
    assert {c.val_size for c in configs} == {5000} and {c.train_subset for c in configs} == {None}
    assert len({repr(c) for c in configs}) == len(configs)  # none twice


def test_a_configuration_two_budgets_share_trains_once():
    p = AR.plan(budgets={30: {"seed_cnn": 2}, 60: {"seed_cnn": 2, "fast": 1}}, seeds=1)
    assert p.rungs() == [("seed_cnn", 2), ("fast", 1)]


def test_smoke_plan_uses_tiny_networks_on_a_subset():
    p = AR.plan(smoke=True)
    assert p.seeds == (1,) and p.train_subset == 1000
    assert AR.run_config(p, "fast_narrow", 1, 1).model_kwargs["widths"] == [8, 16, 16]
    assert AR.run_config(p, "fast", 1, 1).model_kwargs["widths"] == [16, 32, 32]
    assert "200 validation images" in p.describe() and "1 seed per configuration" in p.describe()


@pytest.mark.parametrize(
    "budgets, seeds, message",
    [
        ({60: {"vgg": 1}}, 2, "BUDGETS\\[60\\] names 'vgg'"),
        ({60: {}}, 2, "names no architecture"),
        ({}, 2, "BUDGETS must map seconds"),
        ({-5: {"fast": 1}}, 2, "keys are seconds of training"),
        ({"soon": {"fast": 1}}, 2, "keys are seconds of training"),
        ({60: {"fast": 0}}, 2, r"BUDGETS\[60\]\['fast'\] must be a positive whole number"),
        ({60: {"fast": 1}}, 0, "SEEDS must be a positive whole number"),
    ],
)
def test_bad_plans_are_refused(budgets, seeds, message):
    with pytest.raises(ConfigError, match=message):
        AR.plan(budgets=budgets, seeds=seeds)


def test_budget_keys_given_as_text_by_papermill_are_seconds():
    assert list(AR.plan(budgets={"60": {"fast": 1}}).budgets) == [60.0]


def test_pareto_front_keeps_the_points_nothing_beats():
    seconds = [10, 20, 30, 30, 50]
    accuracy = [70, 65, 80, 75, 80]
    # (20, 65) is beaten by (10, 70); (30, 75) by (30, 80); (50, 80) by (30, 80).
    assert AR.pareto_front(seconds, accuracy).tolist() == [True, False, True, False, False]


def _frame():
    """Three seeds of each configuration of BUDGETS. At 120 s the full-width fast net validates highest, but one of
    its seeds ran over the budget, so it is unranked and fast_narrow leads."""
    rows = []
    for arch, epochs, seconds, vals in (
        ("seed_cnn", 1, 20, [0.50, 0.52, 0.51]),
        ("fast_narrow", 1, 22, [0.70, 0.71, 0.72]),
        ("seed_cnn", 6, 90, [0.75, 0.76, 0.77]),
        ("fast_narrow", 7, 95, [0.900, 0.905, 0.910]),
        ("fast", 1, 110, [0.95, 0.95, 0.96]),
    ):
        for i, val in enumerate(vals):
            took = seconds + i + (15 if arch == "fast" and i == 2 else 0)  # the third fast seed: 127 s > 120 s
            rows.append(
                {
                    "architecture": arch,
                    "epochs": epochs,
                    "seed": 21 + i,
                    "run": f"{arch}-{epochs}-{i}",
                    "val_accuracy": val,
                    "train_seconds": took,
                    "trained_on": "AMD EPYC",
                }
            )
    return pd.DataFrame(rows)


def test_the_budget_table_ranks_on_validation_among_the_runs_that_fit():
    p = AR.plan(budgets=BUDGETS)
    table = AR.budget_table(_frame(), p)
    at120 = table[table["budget s"] == 120].set_index("architecture")
    assert not at120.loc["fast", "fits"] and pd.isna(at120.loc["fast", "rank"])
    assert at120.loc["fast_narrow", "rank"] == 1 and at120.loc["seed_cnn", "rank"] == 2
    assert at120.loc["fast_narrow", "val accuracy %"] == pytest.approx(90.5)
    assert at120.loc["fast_narrow", "SD"] == pytest.approx(0.5)
    shown = AR.shown_table(table)
    assert "over budget" in shown["rank"].tolist() and not shown.isna().any().any()
    chosen = AR.chosen_configs(table, p)  # the test set: each budget's leader, every seed
    assert {(c.model, c.epochs) for c in chosen} == {("fast", 1), ("fast", 7)} and len(chosen) == 6
    assert all((c.model_kwargs or {}).get("widths") == [32, 64, 64] for c in chosen)


def test_leaders_are_tested_against_the_runner_up_with_holm_over_the_budgets_and_the_findings_say_so():
    p = AR.plan(budgets=BUDGETS)
    frame = _frame()
    table = AR.budget_table(frame, p)
    tests = AR.leader_tests(table, frame)
    raw = [
        stats.welch_test([0.70, 0.71, 0.72], [0.50, 0.52, 0.51]).p_value,
        stats.welch_test([0.900, 0.905, 0.910], [0.75, 0.76, 0.77]).p_value,
    ]
    assert [tests[s].p_holm for s in (30.0, 120.0)] == pytest.approx(list(stats.holm(raw)))
    assert tests[120.0].leader == "fast_narrow" and tests[120.0].runner_up == "seed_cnn"
    sd = stats.pooled_sd([[0.900, 0.905, 0.910], [0.75, 0.76, 0.77]])[0]  # the reach at Holm's first step, 0.05 / 2
    assert tests[120.0].detectable == pytest.approx(100 * P.minimal_detectable_effect(sd, 3, 0.8, 0.025, paired=False))
    test_frame = pd.DataFrame(
        {"architecture": "fast_narrow", "epochs": 7, "test_accuracy": [0.89, 0.90, 0.91], "run": ["a", "b", "c"]}
    )
    lines = AR.findings(table, tests, test_frame, sized_on="a test machine")
    assert lines[1].startswith("Within 120 s of training, fast_narrow (7 epochs, median 96 s) leads on validation")
    assert "n=3 seeds" in lines[1] and "Holm p = " in lines[1] and "test accuracy, read once: 90.00%" in lines[1]
    assert "Over the budget on some seed, so unranked: fast (127 s)" in lines[1]
    assert "sized on a test machine" in lines[-1] and "trained on AMD EPYC" in lines[-1]


def test_a_difference_the_seeds_do_not_resolve_is_not_called_one():
    frame = _frame()
    frame.loc[frame["architecture"] == "seed_cnn", "val_accuracy"] = [0.69, 0.73, 0.70, 0.89, 0.92, 0.90]
    p = AR.plan(budgets=BUDGETS)
    table = AR.budget_table(frame, p)
    lines = AR.findings(table, AR.leader_tests(table, frame), frame.iloc[:0].assign(test_accuracy=[]))
    assert "not resolvable at this budget" in lines[0] and "above" not in lines[0]
    assert "its seeds detect about" in lines[0]


def test_an_excluded_architecture_is_named_with_its_measured_reason_or_a_missing_record(tmp_path):
    p = AR.plan(budgets=BUDGETS)
    runs = pd.DataFrame(
        {"architecture": "resnet18", "train_seconds": [340.0, 362.0], "val_accuracy": [0.47, 0.46],
         "trained_on": "Intel(R) Xeon(R) Processor"}
    )  # fmt: skip
    (line,) = AR.excluded_note(runs, p)
    assert line.startswith("resnet18 is not in the table: one epoch of its common CIFAR recipe took 351 s")
    assert "more than the largest budget (120 s)" in line and "Intel(R) Xeon(R) Processor" in line
    empty = AR.excluded_runs(tmp_path, AR.plan(budgets=BUDGETS, train_subset=123))  # no record of that split
    assert list(empty.columns) == ["architecture", "train_seconds", "val_accuracy", "trained_on"]
