"""experiments.py: settings, run folders and reuse, the ablation table and the search's choice."""
import math

import pandas as pd
import pytest

from cifar_utils import experiments as E
from cifar_utils import stats
from cifar_utils.data import load_cifar10
from cifar_utils.errors import ConfigError


def test_settings_defaults_smoke_and_overrides():
    full, smoke = E.experiment_settings(), E.experiment_settings(smoke=True)
    assert (full.seeds, full.epochs, full.train_subset, full.trials) == ((1, 2, 3, 4, 5), 10, 10000, 10)
    assert (len(smoke.seeds), smoke.epochs, smoke.train_subset) == (2, 1, 1000)
    given = E.experiment_settings(smoke=True, seeds=3, epochs=2, train_subset=0, trials=4)
    assert (given.seeds, given.epochs, given.train_subset, given.trials) == ((1, 2, 3), 2, None, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": 1}, "SEEDS must be a whole number of at least 2"),
    ({"epochs": 0}, "EXPERIMENT_EPOCHS"),
    ({"trials": 2.5}, "TRIALS"),
    ({"train_subset": 5}, "EXPERIMENT_SUBSET"),
    ({"augment": "rotate"}, "unknown augment 'rotate'"),
])
def test_bad_settings_are_refused_with_the_parameter_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        E.experiment_settings(**kwargs)


def test_run_folder_is_unique_to_the_configuration():
    s = E.experiment_settings()
    a, b = E.ablation_configs(s, augments=["flip"])[:2]
    assert E.run_folder("store", a) == E.run_folder("store", E.base_config(s, augment="flip", seed=1))
    assert E.run_folder("store", a) != E.run_folder("store", b)
    assert E.run_folder("store", a).name.startswith("seed_cnn-flip-seed1-")


def test_ablation_covers_every_augmentation_and_seed():
    s = E.experiment_settings(seeds=3)
    configs = E.ablation_configs(s)
    assert {(c.augment, c.seed) for c in configs} == {(a, k) for a in E.ABLATION_AUGMENTS for k in (1, 2, 3)}
    assert all(c.epochs == 10 and c.train_subset == 10000 and c.optimizer == "adam" for c in configs)
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        E.ablation_configs(s, augments=["rotate"])


def test_trials_start_with_the_recipe_are_distinct_and_repeatable():
    s = E.experiment_settings()
    trials = E.sample_trials(s, n=12, seed=3)
    assert trials[0] == E.baseline_knobs(s)
    assert len({tuple(sorted(t.items())) for t in trials}) == 12
    assert trials == E.sample_trials(s, n=12, seed=3) != E.sample_trials(s, n=12, seed=4)
    assert all(t["lr"] in E.SEARCH_SPACE["lr"][t["optimizer"]] and t["epochs"] in (5, 10) for t in trials)
    sgd = E.trial_configs(s, [t for t in trials if t["optimizer"] == "sgd"][:1])[0]
    assert sgd.nesterov and sgd.momentum == 0.9 and sgd.seed == E.SEARCH_TRIAL_SEED
    with pytest.raises(ConfigError, match="search space holds only"):
        E.sample_trials(s, n=10_000)


def _trials_frame(val, loss, test=None):
    knobs = [dict(E.baseline_knobs(E.experiment_settings()), lr=lr) for lr in (1e-3, 3e-3, 3e-4)]
    return pd.DataFrame([{**k, "val_accuracy": v, "val_loss": l, "test_accuracy": t, "seconds": 1.0}
                         for k, v, l, t in zip(knobs, val, loss, test or [None] * 3)])


def test_best_trial_is_chosen_on_validation_with_loss_breaking_ties():
    assert E.best_trial(_trials_frame([0.6, 0.7, 0.7], [1.0, 0.9, 0.8]))["lr"] == 3e-4
    assert E.best_trial(_trials_frame([0.6, math.nan, 0.5], [1.0, math.nan, 0.8]))["lr"] == 1e-3
    assert list(E.search_table(_trials_frame([0.6, 0.7, 0.5], [1.0, 0.9, 0.8]))["val accuracy %"]) == [70.0, 60.0, 50.0]


def test_best_trial_refuses_trials_that_carry_test_results():
    with pytest.raises(ConfigError, match="validation only"):
        E.best_trial(_trials_frame([0.6, 0.7, 0.5], [1.0, 0.9, 0.8], test=[0.6, 0.7, 0.9]))


def test_group_table_compares_each_group_with_the_reference():
    frame = pd.DataFrame({"augment": ["none"] * 3 + ["flip"] * 3,
                          "val_accuracy": [0.60, 0.61, 0.62, 0.70, 0.71, 0.72],
                          "test_accuracy": [0.59, 0.60, 0.61, 0.69, 0.71, 0.70]})
    table, sentences = E.group_table(frame, "augment", "none")
    assert list(table.index) == ["none", "flip"] and list(table["n"]) == [3, 3]
    assert table.loc["none", "val accuracy % (mean ± std [95% CI])"].startswith("61.00 ± 1.00 [")
    expected = stats.welch_test([0.69, 0.71, 0.70], [0.59, 0.60, 0.61])
    assert table.loc["flip", "p (Welch)"] == f"{expected.p_value:.3g}"
    assert len(sentences) == 1 and sentences[0].startswith("flip vs none: +10.00 points")
    with pytest.raises(ConfigError, match="reference 'rotate'"):
        E.group_table(frame, "augment", "rotate")


def test_train_runs_reuses_finished_runs_and_keeps_the_test_set_out_of_trials(synthetic_root, tmp_path):
    data = load_cifar10(synthetic_root, verify=False)
    s = E.experiment_settings(smoke=True, train_subset=100)
    configs = [c.__class__.from_dict({**c.to_dict(), "val_size": 100}) for c in E.ablation_configs(s, augments=["none"])]
    lines = []
    first = E.train_runs(configs, tmp_path / "ev", data, evaluate_test=True, log=lines.append)
    again = E.train_runs(configs, tmp_path / "ev", data, evaluate_test=True, log=lines.append)
    assert not first["reused"].any() and again["reused"].all()
    assert list(first["val_accuracy"]) == list(again["val_accuracy"])
    assert first["test_accuracy"].notna().all() and "(reused)" in lines[-1]
    trials = E.train_runs(configs[:1], tmp_path / "tr", data, evaluate_test=False, log=lines.append)
    assert trials["test_accuracy"].isna().all()
    assert "2 runs (0 trained now, 2 reused)" in E.provenance_line(again)
