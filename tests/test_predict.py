"""`predict`: the user's own images, any size and mode, become 32x32 RGB and get their top-3 classes."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_utils import runs
from cifar_utils.cli import main
from cifar_utils.data import CLASSES
from cifar_utils.models import build_model
from cifar_utils.predict import load_image, predict_files, prediction_table
from cifar_utils.config import TrainConfig


def _run_folder(folder, precision: str):
    """A run folder as training leaves it, with a randomly initialised seed_cnn (predict needs no accuracy)."""
    run_dir = folder / f"run-{precision}"
    torch.manual_seed(0)
    model = build_model("seed_cnn", mean=(120.0, 120.0, 110.0), std=(60.0, 60.0, 65.0), channels_last=True)
    config = TrainConfig(epochs=1, device="cpu", precision=precision)  # as fit records it: resolved
    runs.save_checkpoint(run_dir / runs.CHECKPOINT, {"config": config.to_dict(), "model": model.state_dict()})
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _run_folder(tmp_path_factory.mktemp("predict"), "fp32")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(folder / "photo.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (7, 11, 4), dtype=np.uint8), "RGBA").save(folder / "tiny_rgba.png")
    Image.fromarray(rng.integers(0, 256, (50, 50), dtype=np.uint8), "L").save(folder / "grey.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("P").save(folder / "palette.png")
    Image.fromarray(rng.integers(0, 256, (33, 31, 4), dtype=np.uint8), "CMYK").save(folder / "cmyk.jpg")
    return folder


def test_every_mode_and_size_becomes_a_32x32_rgb_uint8_tensor(pictures):
    for path in sorted(pictures.iterdir()):
        image = load_image(path)
        assert image.shape == (3, 32, 32) and image.dtype == torch.uint8, path.name


def test_a_flat_colour_stays_that_colour_at_any_size(tmp_path):
    Image.new("RGB", (1000, 300), (200, 30, 90)).save(tmp_path / "flat.png")
    assert load_image(tmp_path / "flat.png")[:, 0, 0].tolist() == [200, 30, 90]
    assert bool((load_image(tmp_path / "flat.png") == torch.tensor([200, 30, 90]).view(3, 1, 1)).all())


def test_transparency_is_laid_over_white_and_16_bit_grey_keeps_its_range(tmp_path):
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert bool((load_image(tmp_path / "clear.png") == 255).all())
    Image.fromarray(np.full((20, 20), 32896, dtype=np.uint16)).save(tmp_path / "grey16.png")  # 0x8080: mid-grey
    assert load_image(tmp_path / "grey16.png").unique().tolist() == [128]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, 16:] = 255  # stored: black left half, white right half
    exif = Image.Exif()
    exif[0x0112] = 3  # orientation: rotate 180 degrees to display
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "rotated.jpg")
    assert image[:, :, :8].float().mean() > 240 and image[:, :, -8:].float().mean() < 15  # displayed: white left


def test_predictions_are_the_models_softmax_top_three(run_dir, pictures):
    paths = sorted(pictures.iterdir())
    predictions = predict_files(run_dir, paths, device="cpu")
    model = runs.load_run(run_dir).model
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack([load_image(p) for p in paths])), dim=1)
    for p, row in zip(predictions, probs):
        assert p.error is None and len(p.top) == 3
        best = row.topk(3)
        assert [c for c, _ in p.top] == [CLASSES[i] for i in best.indices.tolist()]
        assert [prob for _, prob in p.top] == pytest.approx(best.values.tolist(), abs=1e-6)
    table = prediction_table(predictions).splitlines()
    assert table[0].split() == ["image", "top-1", "top-2", "top-3"] and len(table) == 1 + len(paths)


@pytest.mark.auto_precision
def test_a_bf16_run_predicts_in_bf16_within_bf16_s_error_of_fp32(tmp_path, pictures):
    """A run trained in bf16 predicts in bf16 (its recorded precision), on any CPU."""
    paths = sorted(pictures.iterdir())
    bf16_run = _run_folder(tmp_path, "bf16")
    predictions = predict_files(bf16_run, paths, device="cpu")
    model = runs.load_run(bf16_run).model
    images = torch.stack([load_image(p) for p in paths])
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16 = torch.softmax(model(images).float(), dim=1)
        in_fp32 = torch.softmax(model(images), dim=1)
    for p, row, exact in zip(predictions, in_bf16, in_fp32):
        assert [prob for _, prob in p.top] == pytest.approx(row.topk(3).values.tolist(), abs=1e-6)
        # bf16 keeps 8 significant bits (relative error 2^-8 per rounding); through a few layers the
        # logits of this near-uniform random net move by well under 0.05, the probabilities by less.
        assert [prob for _, prob in p.top] == pytest.approx(exact[[CLASSES.index(c) for c, _ in p.top]].tolist(), abs=2e-2)


@pytest.mark.auto_precision
def test_cli_prints_a_table_or_json(run_dir, pictures, capsys):
    photo = pictures / "photo.jpg"
    assert main(["predict", str(run_dir), str(photo), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["image", "top-1", "top-2", "top-3"] and out[1].startswith(str(photo))
    assert out[1].count("%") == 3
    assert main(["predict", str(run_dir), str(photo), "--json", "--top", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    top = result["predictions"][0]["top"]
    assert result["run"] == str(run_dir) and result["predictions"][0]["image"] == str(photo)
    assert len(top) == 5 and {t["class"] for t in top} <= set(CLASSES)
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert sum(t["probability"] for t in top) <= 1 + 1e-6
