"""The fast model a full report analyses: committed, reused when it is this very run, trained when not."""

import pytest

from cifar_utils.errors import CifarError
from cifar_utils.paths import project_dir
from cifar_utils.runs import reference as REF
from cifar_utils.runs import run_files


@pytest.fixture
def tiny_reference(monkeypatch):
    """The mechanism with a run that trains in a second: the seed recipe, one epoch of 200 images."""
    monkeypatch.setattr(REF, "REFERENCE_RUNS", {"tiny": ("seed", {"epochs": 1, "train_subset": 200, "val_size": 100})})
    return "tiny"


def test_a_missing_reference_run_is_trained_and_kept_without_its_training_state(
    tmp_path, synthetic_root, tiny_reference
):
    folders = REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, log=lambda *_: None)
    assert folders == [tmp_path / "runs" / "tiny"]
    payload = run_files.load_checkpoint(folders[0])
    assert {"config", "model", "history"} <= set(payload)
    assert not {"optimizer", "rng"} & set(payload)  # what would be committed is the weights alone
    record = run_files.load_run(folders[0])  # and it still loads for the analyses
    assert record.config.epochs == 1 and len(record.history) == 1 and record.metrics["test_accuracy"] is not None
    with pytest.raises(CifarError, match="lacks the training state"):
        run_files.resume_checkpoint(folders[0])


def test_a_finished_reference_run_is_reused_and_retrained_only_when_asked(tmp_path, synthetic_root, tiny_reference):
    REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, log=lambda *_: None)
    checkpoint = tmp_path / "runs" / "tiny" / run_files.CHECKPOINT
    before = checkpoint.stat().st_mtime_ns
    said = []
    REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, log=said.append)
    assert checkpoint.stat().st_mtime_ns == before and any("reusing" in m for m in said)
    REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, reuse=False, log=lambda *_: None)
    assert checkpoint.stat().st_mtime_ns != before


def test_a_reference_run_of_another_configuration_is_trained_again(
    tmp_path, synthetic_root, tiny_reference, monkeypatch
):
    REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, log=lambda *_: None)
    monkeypatch.setitem(REF.REFERENCE_RUNS, "tiny", ("seed", {"epochs": 2, "train_subset": 200, "val_size": 100}))
    REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, log=lambda *_: None)
    assert len(run_files.load_run(tmp_path / "runs" / "tiny").history) == 2


def test_skipped_reference_runs_are_left_alone(tmp_path, synthetic_root, tiny_reference):
    assert REF.ensure_reference_runs(tmp_path / "runs", data_root=synthetic_root, skip=("tiny",)) == []
    assert not (tmp_path / "runs" / "tiny").exists()


@pytest.mark.parametrize("name", list(REF.REFERENCE_RUNS))
def test_the_committed_reference_run_is_the_one_the_report_asks_for(name):
    """If the recipe changes and the committed run does not, every fresh clone's report would train for minutes."""
    folder = project_dir() / "outputs" / "runs" / name
    if not (folder / run_files.CHECKPOINT).is_file():
        pytest.skip(f"{folder} is not in this checkout")
    checkpoint = run_files.load_checkpoint(folder)
    saved = checkpoint["config"]
    wanted = REF.reference_config(name).to_dict()
    differences = [d for d in run_files.config_differences(saved, wanted) if not d.startswith("precision")]
    assert differences == []
    assert len(run_files.read_history(folder / run_files.HISTORY)) == saved["epochs"]
    assert "optimizer" not in checkpoint and (folder / run_files.METRICS).is_file()
