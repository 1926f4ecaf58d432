"""experiments.py and ablation.py: the budget, the arms, run records reused without weights, the test once,
the number of seeds from a pilot, the choice on validation, and the search's figure and study name."""

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from cifar_utils.analysis import ablation as A
from cifar_utils.analysis import experiments as E
from cifar_utils.analysis import figures
from cifar_utils.analysis import search as S
from cifar_utils.analysis import stats_power as P
from cifar_utils.analysis.comparisons import compare_arms
from cifar_utils.core.config import RECIPES
from cifar_utils.core.data import load_cifar10
from cifar_utils.errors import CifarError, ConfigError
from cifar_utils.runs import reuse, run_files

matplotlib.use("Agg")


def tiny_budget(**changes):
    """Seconds a run on the synthetic data: 100 training images (20 validation) in one batch, one epoch."""
    return E.budget(smoke=True, train_subset=100, val_size=100, device="cpu", precision="fp32", **changes)


@pytest.fixture(scope="module")
def data(synthetic_root):
    return load_cifar10(synthetic_root, verify=False, download=False)


# ----------------------------------------------------------------------------- budget and arms


def test_budget_defaults_smoke_and_refusals():
    full, smoke = E.budget(), E.budget(smoke=True)
    assert (full.epochs, full.widths, full.train_subset, full.val_size, full.batch_size) == (
        2,
        (32, 64, 64),
        None,
        5000,
        500,
    )
    assert smoke.widths == (8, 16, 16) and smoke.epochs == 1 and smoke.val_images == smoke.train_subset // 5
    assert E.budget(widths=[32, 128, 128], train_subset=0).widths == (32, 128, 128)
    assert E.budget(batch_size=500).batch_size == 500 and "in batches of 500" in E.budget(batch_size=500).describe()
    assert A.arm_config(E.budget(batch_size=500), A.FULL, seed=1).batch_size == 500
    for kwargs, message in (
        ({"epochs": 0}, "EXPERIMENT_EPOCHS"),
        ({"widths": [8, 16]}, "EXPERIMENT_WIDTHS"),
        ({"train_subset": 5}, "EXPERIMENT_SUBSET"),
        ({"val_size": 0}, "EXPERIMENT_VAL_SIZE"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
        ({"batch_size": 0}, "EXPERIMENT_BATCH_SIZE"),
        ({"batch_size": "500"}, "EXPERIMENT_BATCH_SIZE"),
    ):
        with pytest.raises(ConfigError, match=message):
            E.budget(**kwargs)


def test_every_arm_is_the_full_recipe_with_its_own_change_only():
    budget = E.budget(widths=[32, 64, 128])
    full = A.arm_config(budget, A.FULL, seed=3).to_dict()
    assert full["model_kwargs"]["widths"] == [32, 64, 128] and full["model_kwargs"]["head_scale"] == 1 / 128
    assert {k: full[k] for k in ("optimizer", "augment", "tta", "epochs", "val_size")} == {
        "optimizer": "muon",
        "augment": "alt_flip+translate2",
        "tta": "mirror+translate",
        "epochs": 2,
        "val_size": 5000,
    }
    for arm, change in A.ARMS.items():
        if change is None:
            continue
        config = A.arm_config(budget, arm, seed=3).to_dict()
        differs = {k for k in full if config[k] != full[k]}
        assert differs and differs <= set(change), arm  # SGD's momentum and Nesterov are the recipe's own
        assert config["seed"] == 3
    sgd = A.arm_config(budget, A.SGD_ARM, 1)
    assert sgd.optimizer == "sgd" and sgd.lr == RECIPES["fast10"]["lr"] and sgd.lr_per_1024
    assert sgd.model_kwargs["head_scale"] == 1 / 9 and sgd.model_kwargs["widths"] == [32, 64, 128]


def test_the_runs_to_train_pair_every_arm_with_the_full_recipe_on_the_same_seeds():
    configs, labels = A.runs_to_train(E.budget(), ["augment none", A.NO_TTA, "augment none"], range(1, 4))
    pairs = [(label["arm"], c.seed) for c, label in zip(configs, labels)]
    assert pairs == [(A.FULL, s) for s in (1, 2, 3)] + [("augment none", s) for s in (1, 2, 3)]  # NO_TTA trains nothing
    with pytest.raises(ConfigError, match="unknown arm 'rotate' in ARMS"):
        A.check_arms(["augment none", "rotate"])
    assert A.arm_config(E.budget(), "no whitening", 1).model_kwargs["whiten"] is False


# ----------------------------------------------------------------------------- run records


def test_a_run_is_reused_from_its_records_alone_and_rerun_trains_it_again(data, tmp_path):
    store, config = tmp_path / "runs", A.arm_config(tiny_budget(), A.FULL, seed=1)
    folder = run_files.digest_folder(store, config)
    assert folder.name == run_files.config_digest(config) and folder != run_files.digest_folder(
        store, A.arm_config(tiny_budget(), A.FULL, 2)
    )
    first = E.train_runs([config], store, data)
    assert not first["reused"].any() and (folder / run_files.CHECKPOINT).is_file()
    assert math.isfinite(first["val_accuracy_no_tta"].iloc[0])  # what test-time augmentation adds is recorded
    # A fresh clone holds the records (config, history, metrics) and no weights: nothing is trained.
    (folder / run_files.CHECKPOINT).unlink()
    again = E.train_runs([config], store, data)
    assert again["reused"].all() and not (folder / run_files.CHECKPOINT).exists()
    assert again["val_accuracy"].iloc[0] == first["val_accuracy"].iloc[0]
    rerun = E.train_runs([config], store, data, rerun=True)
    assert not rerun["reused"].any() and (folder / run_files.CHECKPOINT).is_file()
    # Records of another configuration in the folder are not this run's.
    (folder / run_files.CHECKPOINT).unlink()
    saved = json.loads((folder / run_files.CONFIG).read_text())
    (folder / run_files.CONFIG).write_text(json.dumps({**saved, "lr": 0.5}))
    assert reuse.reusable_record(config, folder) is None
    assert not E.train_runs([config], store, data)["reused"].any()


def test_records_made_where_auto_meant_another_precision_are_reused_and_labelled(data, tmp_path, monkeypatch):
    """A clone's records were made where "auto" meant bf16; where it means fp32 they are found and reused as they
    are (their rows name bf16 and the CPU), the test result too; rerun trains at this machine's precision."""
    from cifar_utils.core import cpu

    store = tmp_path / "runs"
    config = A.arm_config(E.budget(smoke=True, train_subset=100, val_size=100, device="cpu"), A.FULL, seed=1)
    assert config.precision == "auto"
    monkeypatch.setenv(cpu.PRECISION_ENV, "fp16")  # "another machine": fp16 autocast runs on every CPU
    made = E.train_runs([config], store, data)
    E.test_results([config], store, data, log=lambda *_: None)
    fp16_folder = run_files.digest_folder(store, config)
    (fp16_folder / run_files.CHECKPOINT).unlink()  # as committed: records only
    monkeypatch.setenv(cpu.PRECISION_ENV, "fp32")  # this machine
    assert run_files.digest_folder(store, config) != fp16_folder  # runs at different precisions never share a folder
    assert reuse.decide_experiment_run(store, config).folder == fp16_folder
    again = E.train_runs([config], store, data)
    assert again["reused"].all() and again["run"].iloc[0] == fp16_folder.name
    assert again["trained_precision"].iloc[0] == "fp16" and again["trained_on"].iloc[0] == cpu.cpu_model()
    assert again["val_accuracy"].iloc[0] == made["val_accuracy"].iloc[0]
    assert "1 in fp16" in E.provenance_line(again)
    assert E.record_test(config, store, data, log=lambda *_: None)["run"] == fp16_folder.name
    retrained = E.train_runs([config], store, data, rerun=True)
    assert not retrained["reused"].any() and retrained["trained_precision"].iloc[0] == "fp32"
    assert retrained["run"].iloc[0] == run_files.digest_folder(store, config).name != fp16_folder.name
    # An explicitly asked precision wants its own runs, not another's.
    pinned = reuse.decide_experiment_run(store, A.arm_config(tiny_budget(), A.FULL, seed=2))
    assert pinned.folder == run_files.digest_folder(store, A.arm_config(tiny_budget(), A.FULL, seed=2))


def test_rows_done_earlier_are_taken_not_trained_again(data, tmp_path):
    store = tmp_path / "runs"
    config = A.arm_config(tiny_budget(), A.FULL, seed=1)
    pilot = E.train_runs([config], store, data, labels=[{"arm": A.FULL}])
    lines = []
    again = E.train_runs([config], store, data, rerun=True, labels=[{"arm": A.FULL}], done=pilot, log=lines.append)
    assert again.to_dict("records") == pilot.to_dict("records") and lines == []


def test_the_test_set_is_read_once_at_the_end_and_kept_in_the_records(data, tmp_path):
    store, config = tmp_path / "runs", A.arm_config(tiny_budget(), A.FULL, seed=1)
    frame = E.train_runs([config], store, data)
    assert not any(c.startswith("test_") for c in frame.columns)
    folder = run_files.digest_folder(store, config)
    assert run_files.read_json(folder / run_files.METRICS)["test_accuracy"] is None  # training never looked at it
    lines = []
    first = E.test_results([config], store, data, log=lines.append)
    assert len(lines) == 1 and first["test_images"].iloc[0] == len(data.test_labels)
    (folder / run_files.CHECKPOINT).unlink()  # a clone: the result comes from metrics.json
    assert E.test_results([config], store, data, log=lines.append).equals(first) and len(lines) == 1
    other = A.arm_config(tiny_budget(), A.FULL, seed=2)
    E.train_runs([other], store, data)
    (run_files.digest_folder(store, other) / run_files.CHECKPOINT).unlink()
    with pytest.raises(CifarError, match="without a test result and without its weights.*RERUN=True"):
        E.record_test(other, store, data)


def test_no_tta_is_scored_from_the_full_recipes_runs():
    frame = pd.DataFrame(
        {
            "arm": [A.FULL, A.FULL, "augment none", "augment none"],
            "seed": [1, 2, 1, 2],
            "val_accuracy": [0.9, 0.91, 0.8, 0.82],
            "val_accuracy_no_tta": [0.88, 0.9, 0.79, 0.8],
        }
    )
    values = A.arm_accuracies(frame, ["augment none", A.NO_TTA])
    assert values[values["arm"] == A.NO_TTA]["val_accuracy"].tolist() == [0.88, 0.9]
    assert len(values) == 6
    with pytest.raises(ConfigError, match="RERUN=True"):
        A.arm_accuracies(frame.assign(val_accuracy_no_tta=math.nan), [A.NO_TTA])


# ----------------------------------------------------------------------------- how many seeds


def test_auto_picks_the_seeds_that_detect_the_target_and_says_when_the_cap_binds():
    pilot = [0.930, 0.932, 0.929]
    sd = np.std(pilot, ddof=1)
    plan = A.plan_seeds(pilot, "auto", max_seeds=20, target=0.01)
    assert plan.needed == P.seeds_needed(math.sqrt(2) * sd, 0.01) and plan.n == max(plan.needed, 3) and not plan.capped
    assert plan.detectable <= 0.01
    assert "needs" in plan.sentences()[1] and f"{100 * sd:.3f} points" in plan.sentences()[0]
    noisy = A.plan_seeds([0.90, 0.93, 0.95], "auto", max_seeds=6, target=0.01)
    assert noisy.capped and noisy.n == 6 and noisy.needed > 6 and noisy.detectable > 0.01
    assert "this budget cannot resolve 1 point" in noisy.sentences()[1]
    fixed = A.plan_seeds(pilot, 4)
    assert fixed.n == 4 and fixed.detectable == pytest.approx(P.minimal_detectable_effect(math.sqrt(2) * sd, 4))
    flat = A.plan_seeds([0.5, 0.5], "auto", max_seeds=3)
    assert flat.n == 3 and math.isnan(flat.detectable) and "did not vary" in flat.sentences()[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (("auto", 20, 1), "PILOT_SEEDS and MAX_SEEDS"),
        (("auto", 2, 3), "PILOT_SEEDS and MAX_SEEDS"),
        ((1, 20, 3), "N_SEEDS must be 'auto' or a whole number of at least 2"),
        (("many", 20, 3), "N_SEEDS"),
    ],
)
def test_bad_seed_settings_are_refused_with_the_parameter_named(args, message):
    with pytest.raises(ConfigError, match=message):
        A.seed_settings(False, *args)


def test_search_settings_resolve_and_refuse():
    assert E.search_settings() == (12, 2, 4) and E.search_settings(smoke=True) == (2, 2, 2)
    with pytest.raises(ConfigError, match="RETRAIN_SEEDS must be a whole number of at least 2"):
        E.search_settings(seeds=1)


# ----------------------------------------------------------------------------- the choice and the figures


def test_the_choice_is_made_on_validation_and_skips_a_configuration_that_diverged():
    frame = pd.DataFrame(
        {
            "configuration": ["recipe"] * 2 + ["trial 3"] * 2 + ["trial 7"] * 2,
            "seed": [1, 2] * 3,
            "val_accuracy": [0.90, 0.91, 0.92, 0.93, 0.99, math.nan],
        }
    )
    assert E.choose_by_validation(frame, "configuration") == "trial 3"
    assert E.validation_table(frame, "configuration").loc["trial 7", "diverged"] == 1
    with pytest.raises(ConfigError, match="validation only"):
        E.choose_by_validation(frame.assign(test_accuracy=0.5), "configuration")


def test_the_trials_figure_keeps_a_broken_trial_from_flattening_the_rest():
    values = [0.90, 0.91, 0.905, 0.10, 0.915, 0.912]
    trials = pd.DataFrame(
        {
            "state": ["COMPLETE"] * 6 + ["FAIL", "PRUNED"],
            "value": values + [math.nan, math.nan],
            "last_value": values + [math.nan, 0.85],
        },
        index=pd.RangeIndex(8, name="number"),
    )
    fig = figures.plot_trials(trials)
    bottom, top = fig.axes[0].get_ylim()
    assert 10 < bottom < 85 and top > 91.5  # the trial at 10% sits on the edge, the pruned one at 85% is shown
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "complete, below the axis" in labels and "failed (diverged or stopped)" in labels


def test_the_forest_plot_has_a_line_at_zero_and_one_row_per_arm():
    frame = pd.DataFrame(
        [
            {"arm": a, "seed": s, "val_accuracy": v + 0.001 * s * (a == "b")}
            for a, v in (("full", 0.9), ("b", 0.88), ("c", 0.9))
            for s in (1, 2, 3)
        ]
    )
    fig = figures.plot_forest(compare_arms(frame, "arm", "full", value="val_accuracy"), "full", margin=0.01)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b"]
    assert any(line.get_xdata()[0] == 0 and line.get_xdata()[1] == 0 for line in ax.get_lines())


def test_a_changed_search_gets_a_study_of_its_own():
    base = E.base_config(tiny_budget())
    name = S.default_name(base, S.SearchSpace(), 10)
    assert name == S.default_name(base, S.SearchSpace(), 10) and name.startswith("fast-search-")
    assert (
        name
        != S.default_name(base, S.SearchSpace(), 11)
        != S.default_name(base.__class__.from_dict({**base.to_dict(), "epochs": 2}), S.SearchSpace(), 10)
    )


# ----------------------------------------------------------------------------- the follow-up rounds


def test_the_follow_up_rounds_train_what_they_say():
    budget = E.budget()
    configs, labels = A.round_configs("confirm", budget)
    assert {c.seed for c in configs} == set(A.CONFIRM_SEEDS) and {lab["arm"] for lab in labels} >= {A.FULL}
    sweep, sweep_labels = A.round_configs("sgd-sweep", budget)
    assert len(sweep) == len(A.SWEEP_FACTORS) ** 2 * len(A.SWEEP_SEEDS) and {c.optimizer for c in sweep} == {"sgd"}
    long, long_labels = A.round_configs("long", budget)
    assert {c.epochs for c in long} == {A.LONG_EPOCHS} and {c.seed for c in long} == set(A.LONG_SEEDS)
    assert {c.model_kwargs["widths"][0] for c in long} == {budget.widths[0]}  # the proxy's widths, longer
    trained = {lab["arm"] for lab in long_labels}
    assert trained == {A.FULL, *A.LONG_ARMS} - {A.NO_TTA}  # no TTA is scored from the full recipe's runs
    with pytest.raises(ConfigError, match="run the round 'sgd-sweep' first"):
        A.round_configs("sgd-tuned", budget)
    rows = pd.DataFrame(sweep_labels).assign(val_accuracy=np.linspace(0.7, 0.8, len(sweep)))
    tuned, _ = A.round_configs("sgd-tuned", budget, rows)  # the last factor pair scored best
    base = A.ARMS[A.SGD_ARM]
    assert tuned[0].lr == pytest.approx(base["lr"] * A.SWEEP_FACTORS[-1])
    assert type(tuned[0].lr) is float and type(tuned[0].weight_decay) is float  # a checkpoint loads them safely
    assert tuned[0].weight_decay == pytest.approx(base["weight_decay"] * A.SWEEP_FACTORS[-1])
    assert {c.seed for c in tuned} == set(A.CONFIRM_SEEDS)


def _comparison(deltas, p_holm, n):
    arms = ["no whitening", "augment flip+translate", "no TTA"]
    return pd.DataFrame(
        {"delta": deltas, "ci_low": [d - 0.4 for d in deltas], "ci_high": [d + 0.4 for d in deltas], "n": n,
         "p_holm": p_holm, "equivalent": False},
        index=arms,
    )  # fmt: skip


def test_effects_across_budgets_say_which_hold_as_training_grows():
    proxy = _comparison([-1.83, -0.77, -1.25], [0.001, 0.099, 0.001], 5)
    longer = _comparison([-1.10, -0.90, -0.30], [0.01, 0.02, 0.5], 3)
    side = A.across_budgets(proxy, longer, "2 epochs", "8 epochs")
    assert side.loc["no whitening", "2 epochs"] == "-1.83 [-2.23, -1.43], n=5: lowers"
    assert side.loc["no TTA", "8 epochs"].endswith("n=3: not resolvable")
    said = A.held_as_training_grows(proxy, longer)
    assert said.startswith("Resolved at both budgets, the same way: no whitening (-1.10)")
    assert "resolved at the proxy but not at the longer budget: no TTA" in said
    assert "resolved only at the longer budget: augment flip+translate (lowers -0.90)" in said


def test_the_sweep_says_what_it_chose_and_when_that_is_at_the_grids_edge():
    rows = [
        {"lr_factor": lr, "wd_factor": wd, "seed": s, "val_accuracy": 0.80 + 0.01 * (lr == 1.0) + 0.005 * (wd == 2.0)}
        for lr in A.SWEEP_FACTORS
        for wd in A.SWEEP_FACTORS
        for s in A.SWEEP_SEEDS
    ]
    said = A.sweep_sentence(pd.DataFrame(rows))
    assert said.startswith(
        "The SGD sweep chose lr x1 and weight decay x2 (81.50% mean validation accuracy over 2 seeds"
    )
    assert "its weight decay sits at the grid's edge" in said and "learning rate" not in said


def test_weights_that_cannot_be_read_never_cost_a_finished_runs_records(data, tmp_path):
    config = E.base_config(tiny_budget(), seed=3)
    first = E.train_runs([config], tmp_path, data)
    folder = tmp_path / first["run"].iloc[0]
    records = {f: (folder / f).read_bytes() for f in (run_files.CONFIG, run_files.HISTORY, run_files.METRICS)}
    (folder / run_files.CHECKPOINT).write_bytes(b"not a checkpoint")  # e.g. one torch's weights_only load refuses
    again = E.train_runs([config], tmp_path, data)
    assert bool(again["reused"].iloc[0]) and again["val_accuracy"].iloc[0] == first["val_accuracy"].iloc[0]
    assert {f: (folder / f).read_bytes() for f in records} == records  # nothing replaced
