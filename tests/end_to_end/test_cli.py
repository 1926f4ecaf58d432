import subprocess
import sys

from cifar_utils.cli import main

FAST = ["--epochs", "1", "--batch-size", "100", "--val-size", "50", "--no-progress", "--device", "cpu"]


def _train(synthetic_root, out, *extra):
    return main(["train", "--data-root", str(synthetic_root), "--no-verify", "--out", str(out), *FAST, *extra])


def test_train_prints_seed_table_and_evaluate_reads_the_run(synthetic_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(synthetic_root, out) == 0
    printed = capsys.readouterr().out
    assert "| Epoch | Train Loss | Train Accuracy | Validation Loss | Validation Accuracy |" in printed
    assert (
        main(["evaluate", str(out), "--split", "test", "--data-root", str(synthetic_root), "--no-verify", "--json"])
        == 0
    )
    assert '"split": "test"' in capsys.readouterr().out


def test_evaluate_missing_run_folder(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_utils", "evaluate", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_help_for_every_subcommand():
    for sub in ("train", "evaluate", "predict"):
        proc = subprocess.run([sys.executable, "-m", "cifar_utils", sub, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage:" in proc.stdout
