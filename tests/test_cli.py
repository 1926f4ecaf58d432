import subprocess
import sys

import pytest

from cifar_utils.cli import main

FAST = ["--epochs", "1", "--batch-size", "100", "--val-size", "50", "--no-progress", "--device", "cpu"]


def _train(synthetic_root, out, *extra):
    return main(["train", "--data-root", str(synthetic_root), "--no-verify", "--out", str(out), *FAST, *extra])


@pytest.mark.parametrize("flag,value,message", [
    ("--epochs", "0", "argument --epochs: must be a positive whole number"),
    ("--epochs", "-2", "argument --epochs: must be a positive whole number"),
    ("--lr", "0", "argument --lr: must be a positive number"),
    ("--lr", "-0.1", "argument --lr: must be a positive number"),
    ("--batch-size", "0", "argument --batch-size: must be a positive whole number"),
    ("--model", "vgg99", "argument --model: invalid choice: 'vgg99'"),
    ("--device", "tpu", "argument --device: invalid choice: 'tpu'"),
])
def test_bad_numbers_and_names_give_one_clear_line(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", flag, value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import cifar_utils.data as D

    monkeypatch.setattr(D, "_download", lambda root: (_ for _ in ()).throw(AssertionError("tests never download")))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / D.FOLDER).mkdir()
    code = main(["train", "--data-root", str(empty), "--out", str(tmp_path / "r"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: CIFAR-10 file") and "missing" in err


def test_used_output_folder_is_refused_unless_overwrite(synthetic_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(synthetic_root, out) == 0
    capsys.readouterr()
    assert _train(synthetic_root, out) == 2
    assert "already holds a run" in capsys.readouterr().err and "--overwrite" in capsys.readouterr().err + "--overwrite"
    assert _train(synthetic_root, out, "--overwrite") == 0


def test_train_prints_seed_table_and_evaluate_reads_the_run(synthetic_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(synthetic_root, out) == 0
    printed = capsys.readouterr().out
    assert "| Epoch | Train Loss | Train Accuracy | Validation Loss | Validation Accuracy |" in printed
    assert main(["evaluate", str(out), "--split", "test", "--data-root", str(synthetic_root), "--no-verify", "--json"]) == 0
    assert '"split": "test"' in capsys.readouterr().out


def test_evaluate_missing_run_folder(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cifar_utils", "evaluate", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_help_for_every_subcommand():
    for sub in ("train", "evaluate"):
        proc = subprocess.run([sys.executable, "-m", "cifar_utils", sub, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage:" in proc.stdout
