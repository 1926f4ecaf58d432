"""What notebooks 02 and 03 say about a run: what the run did, its knobs, its conclusions, which runs to compare."""

import pytest
import torch

from cifar_utils import notebook as NB
from cifar_utils.analysis import findings
from cifar_utils.analysis import tables as T
from cifar_utils.core import metrics as M
from cifar_utils.core.config import TrainConfig, recipe_config
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.plots import curves_note, plot_curves
from cifar_utils.errors import ConfigError, TrainingInterrupted
from cifar_utils.runs import run_files
from cifar_utils.runs.training import fit, fit_or_reuse

CLASSES = ["plane", "car", "cat", "dog"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def tiny(synthetic_root):
    return load_cifar10(synthetic_root, download=False, verify=False)


def _config(**kw):
    return TrainConfig(
        **{
            "epochs": 2,
            "batch_size": 50,
            "val_size": 50,
            "train_subset": 100,
            "device": "cpu",
            "precision": "fp32",
            **kw,
        }
    )


def test_run_story_says_trained_reused_or_resumed_and_where(tiny, tmp_path):
    quiet = lambda *_: None  # noqa: E731
    trained = fit_or_reuse(_config(), run_dir=tmp_path / "a", dataset=tiny, progress=False, log=quiet)
    story = NB.run_story(trained)
    assert story.startswith("**Trained now:** 2 epochs on ") and f"`{tmp_path / 'a'}`" in story

    reused = fit_or_reuse(_config(), run_dir=tmp_path / "a", dataset=tiny, progress=False, log=quiet)
    story = NB.run_story(reused)
    commit = trained.metrics["provenance"]["git_commit"]
    prov = trained.metrics["provenance"]
    assert story.startswith(
        f"**Reused, not trained:** `{tmp_path / 'a'}` already held this configuration finished "
        f"(2 epochs), trained in {trained.metrics['seconds']:.0f} s on {prov['cpu']} (recorded), {prov['date']}"
    )
    assert f"commit {commit}" in story and "REUSE = False" in story

    def ctrl_c_in_epoch_2(line):
        if line.startswith("Epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(_config(), dataset=tiny, run_dir=tmp_path / "b", progress=False, log=ctrl_c_in_epoch_2)
    resumed = fit_or_reuse(_config(), run_dir=tmp_path / "b", dataset=tiny, progress=False, log=quiet, resume=True)
    assert resumed.resumed_after == 1 and not resumed.reused
    assert NB.run_story(resumed).startswith(
        f"**Resumed:** `{tmp_path / 'b'}` held an interrupted run with 1 of 2 "
        f"epochs finished; epochs 2–2 were trained now"
    )
    fresh = fit(_config(epochs=1), dataset=tiny, progress=False, log=quiet)
    assert fresh.resumed_after is None and "memory (no run folder)" in NB.run_story(fresh)


def test_config_frame_lists_the_knobs_a_run_uses_not_the_ones_it_leaves_alone():
    seed = T.config_frame(recipe_config("seed"))
    assert set(seed.index) == set(T.CORE_KNOBS)  # the seed recipe is the defaults: the core knobs only
    assert seed.loc["lr", "value"] == "0.001" and seed.loc["lr", "what it is"] == "learning rate"
    fast = T.config_frame(recipe_config("fast"), name="fast")
    assert {"muon_momentum", "whiten_bias_epochs", "tta", "tta_share", "label_smoothing"} <= set(fast.index)
    assert "averaging_decay" not in fast.index and "averaging" not in fast.index  # fast uses no weight averaging
    assert fast.loc["tta_share", "fast"] == "0.25"


def _confusion(rows):
    return torch.tensor(rows, dtype=torch.long)


def test_findings_name_the_weakest_classes_and_the_largest_confusions():
    confusion = _confusion([[90, 5, 3, 2], [2, 95, 2, 1], [1, 1, 60, 38], [2, 1, 17, 80]])
    assert findings.weakest_classes_sentence(confusion, CLASSES) == (
        "The weakest classes are cat (recall 0.60, precision 0.73) and dog (recall 0.80, precision 0.66); "
        "the strongest is car (recall 0.95)."
    )
    errors = 400 - (90 + 95 + 60 + 80)
    assert findings.confusion_sentence(confusion, CLASSES, k=2) == (
        f"The most frequent confusions: 38% of cat images are called dog; 17% of dog images are called cat. "
        f"These 2 pairs make up {100 * 55 / errors:.0f}% of the {errors} errors."
    )
    assert (
        findings.confusion_sentence(torch.diag(torch.tensor([5, 5])), ["a", "b"]) == "No test image was misclassified."
    )


def test_calibration_verdict_follows_the_gap_between_confidence_and_accuracy():
    labels = torch.arange(1000) % 4
    right = torch.nn.functional.one_hot(labels, 4).float()
    wrong = torch.nn.functional.one_hot((labels + 1) % 4, 4).float()
    # Every prediction made at 98% confidence, right only 70% of the time: over-confident.
    logits = torch.where((torch.arange(1000) % 10 < 7)[:, None], right, wrong) * 5.0
    sentence = findings.calibration_sentence(M.calibration_bins(logits, labels, 10))
    assert "over-confident: its mean confidence is 28.0 points" in sentence and "above its accuracy" in sentence
    # The same predictions at a confidence equal to their accuracy: well calibrated.
    p = 0.7
    z = torch.log(torch.tensor(p / ((1 - p) / 3)))
    sentence = findings.calibration_sentence(M.calibration_bins(logits / 5.0 * z, labels, 10))
    assert "ECE 0.00%, so the model is well calibrated" in sentence


def test_curves_explain_training_below_validation_only_when_it_happens():
    row = lambda e, tr, va: {"epoch": e, "train_loss": 1.0, "train_acc": tr, "val_loss": 1.0, "val_acc": va}  # noqa: E731
    history = [row(1, 0.50, 0.60), row(2, 0.62, 0.65), row(3, 0.70, 0.66)]
    assert curves_note(history).startswith(
        "Training accuracy lies below validation in epochs 1, 2: it is the running mean"
    )
    assert curves_note([row(1, 0.7, 0.6)]) is None
    fig = plot_curves(history)
    assert any("running mean" in t.get_text() for t in fig.texts)


def test_filter_runs_keeps_matching_configs_and_refuses_unknown_fields(tmp_path):
    made = []
    for name, knobs in (("a", {"augment": "flip"}), ("b", {"augment": "none"}), ("c", {"augment": "flip", "lr": 0.01})):
        (tmp_path / name).mkdir()
        run_files.write_json(tmp_path / name / run_files.CONFIG, TrainConfig(**knobs).to_dict())
        made.append(tmp_path / name)
    assert run_files.filter_runs(made, None) == made
    assert [p.name for p in run_files.filter_runs(made, {"augment": "flip"})] == ["a", "c"]
    assert [p.name for p in run_files.filter_runs(made, {"augment": ["flip", "none"], "lr": 0.001})] == ["a", "b"]
    with pytest.raises(ConfigError, match="cannot filter runs on colour: not a training knob"):
        run_files.filter_runs(made, {"colour": "red"})
    with pytest.raises(ConfigError, match="a run filter is a dict"):
        run_files.filter_runs(made, "flip")


def test_a_run_evaluated_in_another_precision_names_the_accuracy_its_record_holds():
    confusion = _confusion([[80, 20], [10, 90]])
    record = {"test_accuracy": 0.8502, "test_images": 200}
    replayed = findings.replay_sentence(record, "bf16", "fp32", 0.85, 200)
    assert replayed == (
        "Evaluated here in fp32; the run's record, evaluated in bf16 where it was made, holds 85.02% "
        "on the same images (-0.02 points: the same weights, rounded differently)."
    )
    bins = M.calibration_bins(torch.zeros(200, 2), torch.zeros(200).long(), 5)
    headline = findings.test_findings(confusion, ["a", "b"], bins, replayed)[0]
    assert headline.startswith("Test accuracy 85.00% on 200 images. Evaluated here in fp32;")
    # Nothing to explain: the same precision, another number of images, or no record.
    assert findings.replay_sentence(record, "fp32", "fp32", 0.85, 200) is None
    assert findings.replay_sentence(record, "bf16", "fp32", 0.85, 100) is None
    assert findings.replay_sentence(None, "bf16", "fp32", 0.85, 200) is None


def test_a_notebooks_tables_keep_every_word_of_a_long_cell():
    import pandas as pd

    from cifar_utils import notebook  # noqa: F401 (what every notebook imports sets the option)

    text = "optimizer sgd, momentum 0.85, nesterov True, lr 1.5, weight decay 0.00133, batch size 1024"
    assert text in pd.DataFrame({"changes in the full recipe": [text]})._repr_html_()
