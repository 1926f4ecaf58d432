"""Every bad input a user can hand us, in one place, with the one line they get back.

Missing data root, truncated batch file, one flipped byte, malicious pickle (dataset and
checkpoint), unknown model, bad numbers, output folder already used, corrupt or truncated
checkpoint, non-image files to predict, resume with a changed configuration.
"""

import os
import pickle
import shutil
import sys
import types

import pytest
import torch
from PIL import Image

from cifar_utils.cli import main
from cifar_utils.core import data as D
from cifar_utils.errors import CifarError, DatasetError
from cifar_utils.runs import run_files

FAST = [
    "--epochs",
    "1",
    "--batch-size",
    "50",
    "--subset",
    "50",
    "--val-size",
    "100",
    "--no-progress",
    "--device",
    "cpu",
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's 2 cores are shared; oversubscribed threads crawl
    yield
    torch.set_num_threads(threads)


def _train(root, out, *extra):
    return main(["train", "--data-root", str(root), "--no-verify", "--out", str(out), *FAST, *extra])


def _one_error_line(capsys) -> str:
    """The CLI's stderr, which must be exactly one line starting with 'error: '."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


@pytest.fixture(scope="module")
def run_dir(synthetic_root, tmp_path_factory):
    """A finished one-epoch run (tiny), to corrupt copies of and to resume."""
    out = tmp_path_factory.mktemp("runs") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert _train(synthetic_root, out) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def run_copy(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


class _Payload:
    """Unpickling this runs `touch marker`, unless the loader refuses it first."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _copy_dataset(src_root, dst_root):
    """Link every real file into a writable copy of the layout, so one file can be replaced."""
    src, dst = src_root / D.FOLDER, dst_root / D.FOLDER
    dst.mkdir(parents=True)
    for name in D.FILES:
        os.symlink(src / name, dst / name)
    return dst


def _replace(path, data: bytes):
    path.unlink()  # a link into the real dataset: replace the link, never write through it
    path.write_bytes(data)


# ----------------------------------------------------------------------------- missing data root


def test_missing_root_without_download_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match=r"CIFAR10_ROOT"):
        D.load_cifar10(tmp_path / "nowhere", download=False)


def test_missing_root_and_no_network_is_one_line(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    # A stand-in for torchvision.datasets: the test can never download, whatever the network.
    monkeypatch.setitem(sys.modules, "torchvision.datasets", types.SimpleNamespace(CIFAR10=offline))
    assert main(["train", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), *FAST]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: could not download CIFAR-10 into {tmp_path / 'nowhere'}")
    assert "--data-root / $CIFAR10_ROOT" in line


def test_empty_dataset_folder_names_the_missing_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(D, "_download", lambda root: (_ for _ in ()).throw(AssertionError("tests never download")))
    (tmp_path / "empty" / D.FOLDER).mkdir(parents=True)
    assert main(["train", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), *FAST]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: CIFAR-10 file") and "batches.meta is missing" in line


def test_missing_file_is_named(real_root, tmp_path):
    folder = _copy_dataset(real_root, tmp_path)
    (folder / "data_batch_5").unlink()
    with pytest.raises(DatasetError, match=r"data_batch_5 is missing"):
        D.load_cifar10(tmp_path, download=False)


# ----------------------------------------------------------------------------- damaged dataset files


def test_truncated_file_is_refused_with_clear_message(real_root, tmp_path):
    folder = _copy_dataset(real_root, tmp_path)
    data = (folder / "data_batch_3").read_bytes()
    _replace(folder / "data_batch_3", data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"data_batch_3 is corrupt .*delete .* download it afresh"):
        D.load_cifar10(tmp_path, download=False)


def test_one_flipped_byte_is_refused(real_root, tmp_path):
    folder = _copy_dataset(real_root, tmp_path)
    data = bytearray((folder / "test_batch").read_bytes())
    data[len(data) // 2] ^= 0x01
    _replace(folder / "test_batch", bytes(data))
    with pytest.raises(DatasetError, match=r"test_batch is corrupt \(md5 mismatch"):
        D.load_cifar10(tmp_path, download=False)


@pytest.mark.parametrize("cut", [0, 1, 2, 100, 1000, 30000])
def test_truncated_file_without_verification_is_still_a_clear_error(synthetic_root, tmp_path, cut):
    """--no-verify skips the md5 sums; the restricted unpickler must still fail cleanly on any cut."""
    root = tmp_path / "cut"
    shutil.copytree(synthetic_root, root)
    target = root / D.FOLDER / "data_batch_1"
    target.write_bytes(target.read_bytes()[:cut])
    with pytest.raises(DatasetError, match=r"data_batch_1 (could not be read|is not a CIFAR batch)"):
        D.load_cifar10(root, download=False, verify=False)


# ----------------------------------------------------------------------------- malicious pickles


def test_malicious_dataset_pickle_is_refused_without_running_code(synthetic_root, tmp_path):
    root = tmp_path / "evil"
    shutil.copytree(synthetic_root, root)
    marker = tmp_path / "pwned"
    (root / D.FOLDER / "data_batch_2").write_bytes(
        pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2)
    )
    with pytest.raises(DatasetError, match="corrupt"):  # verification refuses it before unpickling
        D.load_cifar10(root, download=False, verify=True)
    with pytest.raises(DatasetError, match=r"data_batch_2 could not be read \(refusing to load"):
        D.load_cifar10(root, download=False, verify=False)  # the restricted unpickler refuses it too
    assert not marker.exists()


def test_malicious_checkpoint_is_refused_without_running_code(run_copy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    payload = run_files.load_checkpoint(run_copy)
    payload["model"] = _Payload(marker)
    torch.save(payload, run_copy / run_files.CHECKPOINT)
    for argv in (
        ["evaluate", str(run_copy)],
        ["predict", str(run_copy), "x.png"],
        ["train", "--resume", str(run_copy)],
    ):
        assert main(argv) == 2
        line = _one_error_line(capsys)
        assert line.startswith(f"error: checkpoint {run_copy / run_files.CHECKPOINT} holds code, not only weights")
        assert "GLOBAL" in line and "refused without running it" in line
    assert not marker.exists()


# ----------------------------------------------------------------------------- corrupt checkpoints


@pytest.mark.parametrize(
    "damage,expected",
    [
        ("truncated", "is corrupt or truncated and cannot be loaded (RuntimeError: PytorchStreamReader failed reading"),
        ("random", "is corrupt or truncated and cannot be loaded ("),
        ("empty", "is empty (0 bytes); retrain, or resume from a good copy"),
        ("text", "is corrupt or truncated and cannot be loaded ("),
        ("tensor", "is not a cifar_utils checkpoint; retrain to create one"),
    ],
)
def test_corrupt_checkpoint_is_one_clear_line(run_copy, capsys, damage, expected):
    path = run_copy / run_files.CHECKPOINT
    data = path.read_bytes()
    if damage == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(
            {
                "truncated": data[: len(data) // 2],
                "random": os.urandom(len(data)),
                "empty": b"",
                "text": b"not a checkpoint\n",
            }[damage]
        )
    with pytest.raises(CifarError, match="retrain"):
        run_files.load_checkpoint(path)
    for argv in (
        ["evaluate", str(run_copy)],
        ["predict", str(run_copy), "x.png"],
        ["train", "--resume", str(run_copy)],
    ):
        assert main(argv) == 2
        assert _one_error_line(capsys).startswith(f"error: checkpoint {path} {expected}")


def test_checkpoint_of_another_model_or_unknown_model(run_copy, capsys):
    payload = run_files.load_checkpoint(run_copy)
    payload["config"]["model"] = "resnet18"
    run_files.save_checkpoint(run_copy / run_files.CHECKPOINT, payload)
    assert main(["evaluate", str(run_copy)]) == 2
    assert "does not match model 'resnet18' (" in _one_error_line(capsys)
    payload["config"]["model"] = "vgg99"  # a run from a newer version, say
    run_files.save_checkpoint(run_copy / run_files.CHECKPOINT, payload)
    assert main(["evaluate", str(run_copy)]) == 2
    assert _one_error_line(capsys).startswith("error: unknown model 'vgg99'; choose one of: ")


# ----------------------------------------------------------------------------- unknown model, bad numbers


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--epochs", "0", "argument --epochs: must be a positive whole number"),
        ("--epochs", "-2", "argument --epochs: must be a positive whole number"),
        ("--epochs", "2.5", "argument --epochs: must be a positive whole number, got '2.5'"),
        ("--lr", "0", "argument --lr: must be a positive number"),
        ("--lr", "-0.1", "argument --lr: must be a positive number"),
        ("--lr", "nan", "argument --lr: must be a positive number, got 'nan'"),
        ("--lr", "inf", "argument --lr: must be a positive number, got 'inf'"),
        ("--lr", "fast", "argument --lr: must be a positive number, got 'fast'"),
        ("--batch-size", "0", "argument --batch-size: must be a positive whole number"),
        ("--momentum", "-1", "argument --momentum: must be a number >= 0, got '-1'"),
        ("--seed", "abc", "argument --seed: invalid int value: 'abc'"),
        ("--model", "vgg99", "argument --model: invalid choice: 'vgg99'"),
        ("--device", "tpu", "argument --device: invalid choice: 'tpu'"),
    ],
)
def test_bad_numbers_and_names_give_one_clear_line(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", flag, value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--label-smoothing", "1.5"], "error: label_smoothing must be in [0, 1), got 1.5"),
        (["--val-size", "-1"], "error: val_size must be between 0 and 49999, got -1"),
        (["--val-size", "600"], "error: val_size 600 leaves no training images: "),
    ],
)
def test_out_of_range_values_are_refused_before_training(synthetic_root, tmp_path, capsys, extra, message):
    assert _train(synthetic_root, tmp_path / "run", *extra) == 2
    assert _one_error_line(capsys).startswith(message)


@pytest.mark.parametrize(
    "subset,message",
    [
        ("100", "the training loss became non-finite at epoch 1, step 2 of 2 (lr 1e+30)"),
        (
            "50",
            "the validation loss became non-finite at epoch 1, step 1 of 1 (lr 1e+30)",
        ),  # one step: its loss was fine
    ],
)
def test_exploding_learning_rate_stops_with_epoch_and_step(synthetic_root, tmp_path, capsys, subset, message):
    assert _train(synthetic_root, tmp_path / "run", "--optimizer", "sgd", "--lr", "1e30", "--subset", subset) == 2
    assert _one_error_line(capsys) == f"error: {message}; try a lower learning rate (--lr 1e+29)"
    assert not (tmp_path / "run" / run_files.CHECKPOINT).exists()  # nothing non-finite was saved


# ----------------------------------------------------------------------------- output folder already used


def test_used_output_folder_is_refused_unless_overwrite(run_copy, synthetic_root, capsys):
    assert _train(synthetic_root, run_copy) == 2
    line = _one_error_line(capsys)
    assert "already holds a run" in line and "--overwrite" in line and f"--resume {run_copy}" in line
    assert _train(synthetic_root, run_copy, "--overwrite") == 0


def test_output_path_that_is_a_file(synthetic_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert _train(synthetic_root, tmp_path / "file") == 2
    assert "exists and is not a folder" in _one_error_line(capsys)


# ----------------------------------------------------------------------------- predict: bad image files


def test_bad_images_each_get_their_own_line_and_the_rest_are_classified(run_dir, tmp_path, capsys):
    good = tmp_path / "cat.png"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(good)
    (tmp_path / "notes.txt").write_text("not an image\n")
    png = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "folder.jpg").mkdir()
    bad = {
        "notes.txt": "not an image Pillow can read (expected PNG or JPEG)",
        "missing.jpg": "no such file",
        "cut.png": "the image is damaged or truncated (",
        "folder.jpg": "is a folder, not an image",
    }
    paths = [str(tmp_path / name) for name in ["notes.txt", "missing.jpg", "cat.png", "cut.png", "folder.jpg"]]
    assert main(["predict", str(run_dir), *paths, "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 4
    for line, (name, reason) in zip(errors, bad.items()):
        assert line.startswith(f"error: {tmp_path / name}: {reason}"), line
    table = captured.out.splitlines()
    assert len(table) == 2 and table[1].startswith(str(good))


def test_predict_with_a_missing_run_or_bad_top(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope"), "x.png"]) == 2
    assert _one_error_line(capsys).startswith(f"error: run folder {tmp_path / 'nope'} does not exist; train one first")
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path), "x.png", "--top", "0"])
    assert "argument --top: must be a positive whole number" in capsys.readouterr().err


# ----------------------------------------------------------------------------- resume


def test_resume_with_a_changed_configuration_lists_the_differences(run_copy, capsys):
    assert main(["train", "--resume", str(run_copy), "--lr", "0.1", "--epochs", "3"]) == 2
    line = _one_error_line(capsys)
    assert line == (
        f"error: cannot resume {run_copy} with a different configuration (epochs: 1 in the run, 3 now; "
        f"lr: 0.001 in the run, 0.1 now); resume without changing them, or train a new run into another --out"
    )
    assert main(["train", "--resume", str(run_copy), "--overwrite"]) == 2
    assert "pass only one of them" in _one_error_line(capsys)


def test_resume_without_a_checkpoint(tmp_path, run_copy, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert _one_error_line(capsys) == f"error: cannot resume {tmp_path / 'nope'}: no such run folder"
    assert not list(tmp_path.glob(".nope*"))  # not even a lock file for a folder that is not there
    (tmp_path / "plain").mkdir()
    assert main(["train", "--resume", str(tmp_path / "plain")]) == 2
    assert "it is not a run folder (no config.json, no model.pt)" in _one_error_line(capsys)
    (run_copy / run_files.CHECKPOINT).unlink()
    assert main(["train", "--resume", str(run_copy)]) == 2
    assert _one_error_line(capsys) == (
        f"error: cannot resume {run_copy}: it holds no checkpoint (model.pt) because its "
        f"first epoch never finished; train it again with --out {run_copy} --overwrite"
    )
