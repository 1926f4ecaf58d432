"""Notebook 07's design: each architecture's rungs, the Pareto front, the best rung within a time budget."""

import math

import numpy as np
import pandas as pd
import pytest

from cifar_utils.analysis import architecture_comparison as AR
from cifar_utils.errors import ConfigError


def test_each_architecture_trains_with_its_own_recipe_on_the_same_split():
    p = AR.plan(ladders={"seed_cnn": [10, 2], "fast": [1], "resnet18": [1]}, seeds=2)
    assert p.ladders["seed_cnn"] == [2, 10] and p.seeds == (1, 2) and p.val_size == 5000
    seed = AR.run_config(p, "seed_cnn", 10, 1)
    assert (seed.model, seed.optimizer, seed.lr, seed.epochs) == ("seed_cnn", "adam", 1e-3, 10)
    fast = AR.run_config(p, "fast", 1, 2)
    assert (fast.model, fast.optimizer, fast.epochs, fast.seed, fast.val_size) == ("fast", "muon", 1, 2, 5000)
    resnet = AR.run_config(p, "resnet18", 1, 1)
    assert (resnet.model, resnet.optimizer, resnet.weight_decay, resnet.augment) == (
        "resnet18",
        "sgd",
        5e-4,
        "flip+translate",
    )
    configs, labels = AR.runs_to_train(p)
    assert len(configs) == (2 + 1 + 1) * 2 and labels[0] == {"architecture": "seed_cnn"}
    assert {c.val_size for c in configs} == {5000} and {c.train_subset for c in configs} == {None}


def test_smoke_plan_uses_tiny_networks_on_a_subset():
    p = AR.plan(smoke=True)
    assert p.seeds == (1,) and p.train_subset == 1000
    assert AR.run_config(p, "fast", 1, 1).model_kwargs["widths"] == [8, 16, 16]
    assert AR.run_config(p, "resnet18", 1, 1).model_kwargs == {"width": 4}


@pytest.mark.parametrize(
    "ladders, seeds, message",
    [
        ({"vgg": [1]}, 2, "LADDERS names 'vgg'"),
        ({}, 2, "LADDERS names no architecture"),
        ({"fast": [0, 2]}, 2, r"LADDERS\['fast'\] must be a list of positive whole numbers"),
        ({"fast": "8"}, 2, r"LADDERS\['fast'\] must be a list"),
        ({"fast": [1]}, 0, "SEEDS must be a positive whole number"),
    ],
)
def test_bad_plans_are_refused(ladders, seeds, message):
    with pytest.raises(ConfigError, match=message):
        AR.plan(ladders=ladders, seeds=seeds)


def test_pareto_front_keeps_the_points_nothing_beats():
    seconds = [10, 20, 30, 30, 50]
    accuracy = [70, 65, 80, 75, 80]
    # (20, 65) is beaten by (10, 70); (30, 75) by (30, 80); (50, 80) by (30, 80).
    assert AR.pareto_front(seconds, accuracy).tolist() == [True, False, True, False, False]


def _frame():
    """Rungs whose validation order differs from their test order at 200 s: seed_cnn 10 ep validates higher than
    fast 1 ep (90% against 86%) but tests lower (79% against 86%), so a ranking on validation shows itself."""
    rows = []
    for arch, epochs, seconds, tests, vals in (
        ("seed_cnn", 2, 30, [0.70, 0.72], [0.69, 0.71]),
        ("seed_cnn", 10, 150, [0.78, 0.80], [0.89, 0.91]),
        ("fast", 1, 100, [0.85, 0.87], [0.85, 0.87]),
        ("fast", 8, 800, [0.94, 0.94], [0.93, 0.95]),
    ):
        for seed, (acc, val) in enumerate(zip(tests, vals), 1):
            rows.append(
                {
                    "architecture": arch,
                    "epochs": epochs,
                    "seed": seed,
                    "test_accuracy": acc,
                    "val_accuracy": val,
                    "train_seconds": seconds + seed,
                    "train_images": 45000,
                }
            )
    return pd.DataFrame(rows)


def test_rung_table_summarises_seeds_and_marks_the_front_on_validation():
    table = AR.rung_table(_frame())
    first = table.iloc[0]
    assert (first["architecture"], first["epochs"], first["seeds"]) == ("seed_cnn", 2, 2)
    assert first["val accuracy %"] == pytest.approx(70.0) and first["test accuracy %"] == pytest.approx(71.0)
    assert first["std"] == pytest.approx(100 * np.std([0.7, 0.72], ddof=1))
    assert first["median train s"] == pytest.approx(31.5) and first["images/s"] == pytest.approx(45000 * 2 / 31.5)
    # On validation, seed_cnn 10 ep (90% in 151.5 s) is on the front; on test (79%) fast 1 ep would beat it.
    assert table["Pareto"].tolist() == [True, True, True, True]


def test_best_within_a_budget_and_the_sentences_rank_on_validation():
    table = AR.rung_table(_frame())
    within = AR.best_within(table, [20, 200, 1000])
    assert within.loc[20].tolist() == ["no rung fits", "no rung fits"]
    assert within.loc[200].tolist() == ["val 90.00% / test 79.00% (10 ep)", "val 86.00% / test 86.00% (1 ep)"]
    assert within.loc[1000, "fast"] == "val 94.00% / test 94.00% (8 ep)"
    lines = AR.findings(table, [20, 200])
    assert lines[0] == "Within 20 s no ranked rung finished; the fastest took 32 s."
    assert lines[1].startswith(
        "Within 200 s of training, the best mean validation accuracy is seed_cnn's, 90.00% (10 epochs, 152 s, "
        "n=2 seeds; test 79.00%, 95% interval ["
    )
    assert lines[1].endswith("; the next architecture, fast, reached 86.00%.")
    assert "descriptive, not resolved differences" in lines[2]


def test_an_untuned_architecture_is_named_but_not_ranked():
    frame = _frame()
    extra = frame[frame["architecture"] == "fast"].assign(architecture="resnet18", val_accuracy=0.99)
    table = AR.rung_table(pd.concat([frame, extra], ignore_index=True))
    lines = AR.findings(table, [1000])
    assert "fast's" in lines[0] and "resnet18's" not in lines[0]
    assert lines[-1].startswith("resnet18 is out of the ranking")


def test_one_seed_has_no_interval():
    frame = _frame()
    table = AR.rung_table(frame[frame["seed"] == 1])
    assert math.isnan(table.iloc[0]["std"]) and table.iloc[0]["95% CI"] == "n/a (one seed)"
