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
    rows = []
    for arch, epochs, seconds, accs in (
        ("seed_cnn", 2, 30, [0.70, 0.72]),
        ("seed_cnn", 10, 150, [0.78, 0.80]),
        ("fast", 1, 100, [0.85, 0.87]),
        ("fast", 8, 800, [0.94, 0.94]),
    ):
        for seed, acc in enumerate(accs, 1):
            rows.append(
                {
                    "architecture": arch,
                    "epochs": epochs,
                    "seed": seed,
                    "test_accuracy": acc,
                    "train_seconds": seconds + seed,
                    "train_images": 45000,
                }
            )
    return pd.DataFrame(rows)


def test_rung_table_summarises_seeds_and_marks_the_front():
    table = AR.rung_table(_frame())
    first = table.iloc[0]
    assert (first["architecture"], first["epochs"], first["seeds"]) == ("seed_cnn", 2, 2)
    assert first["test accuracy %"] == pytest.approx(71.0) and first["std"] == pytest.approx(
        100 * np.std([0.7, 0.72], ddof=1)
    )
    assert first["median train s"] == pytest.approx(31.5) and first["images/s"] == pytest.approx(45000 * 2 / 31.5)
    assert table["Pareto"].tolist() == [True, False, True, True]  # seed_cnn 10 ep (79% in 151 s) is beaten by fast 1 ep


def test_best_within_a_budget_and_the_sentences_come_from_the_table():
    table = AR.rung_table(_frame())
    within = AR.best_within(table, [20, 200, 1000])
    assert within.loc[20].tolist() == ["n/a", "n/a"]
    assert within.loc[200].tolist() == ["79.00% (10 ep)", "86.00% (1 ep)"]
    assert within.loc[1000, "fast"] == "94.00% (8 ep)"
    lines = AR.findings(table, [20, 200])
    assert lines[0] == "Within 20 s no rung finished; the fastest took 32 s."
    assert lines[1] == (
        "Within 200 s of training, fast leads with 86.00% test accuracy (1 epoch, 102 s), ahead of the "
        "best other architecture (seed_cnn, 79.00%)."
    )
    assert lines[2].startswith(
        "The Pareto front (no rung both faster and more accurate): seed_cnn 2 ep (32 s, 71.00%), "
        "fast 1 ep (102 s, 86.00%), fast 8 ep (802 s, 94.00%)"
    )
    assert "fewer than three seeds" in lines[3]


def test_one_seed_has_no_interval():
    frame = _frame()
    table = AR.rung_table(frame[frame["seed"] == 1])
    assert math.isnan(table.iloc[0]["std"]) and table.iloc[0]["95% CI"] == "n/a (one seed)"
