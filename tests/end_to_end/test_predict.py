"""`predict`: the user's own images, any size and mode, become 32x32 RGB and get their top-3 classes."""

import json
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_utils.cli import main
from cifar_utils.core.config import TrainConfig
from cifar_utils.core.data import CLASSES
from cifar_utils.core.models import build_model
from cifar_utils.predict import ImageError, load_image, predict_files, prediction_table
from cifar_utils.runs import run_files


def _run_folder(folder, precision: str):
    """A run folder as training leaves it, with a randomly initialised seed_cnn (predict needs no accuracy)."""
    run_dir = folder / f"run-{precision}"
    torch.manual_seed(0)
    model = build_model("seed_cnn", mean=(120.0, 120.0, 110.0), std=(60.0, 60.0, 65.0), channels_last=True)
    config = TrainConfig(epochs=1, device="cpu", precision=precision)  # as fit records it: resolved
    run_files.save_checkpoint(run_dir / run_files.CHECKPOINT, {"config": config.to_dict(), "model": model.state_dict()})
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
    model = run_files.load_run(run_dir).model
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
    model = run_files.load_run(bf16_run).model
    images = torch.stack([load_image(p) for p in paths])
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16 = torch.softmax(model(images).float(), dim=1)
        in_fp32 = torch.softmax(model(images), dim=1)
    for p, row, exact in zip(predictions, in_bf16, in_fp32):
        assert [prob for _, prob in p.top] == pytest.approx(row.topk(3).values.tolist(), abs=1e-6)
        # bf16 keeps 8 significant bits (relative error 2^-8 per rounding); through a few layers the
        # logits of this near-uniform random net move by well under 0.05, the probabilities by less.
        assert [prob for _, prob in p.top] == pytest.approx(
            exact[[CLASSES.index(c) for c, _ in p.top]].tolist(), abs=2e-2
        )


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


# ----------------------------------------------------------------------------- every mode, every orientation


def _halves(left, right, mode: str, size=(48, 32)) -> Image.Image:
    """A picture in `mode`, `left` value on its left half and `right` on its right."""
    img = Image.new(mode, size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return img


def _sides(image: torch.Tensor) -> tuple[list[int], list[int]]:
    """The RGB values in the middle of the left and right halves (away from the blended edge)."""
    return image[:, 16, 4].tolist(), image[:, 16, 27].tolist()


def test_la_is_laid_over_white_by_its_alpha(tmp_path):
    _halves((100, 0), (100, 255), "LA").save(tmp_path / "la.png")  # grey 100: clear left, opaque right
    assert _sides(load_image(tmp_path / "la.png")) == ([255] * 3, [100] * 3)
    Image.new("LA", (40, 30), (100, 128)).save(tmp_path / "half.png")  # half-transparent: 100*128/255 + 255*127/255
    assert load_image(tmp_path / "half.png").unique().tolist() == [177]


def test_a_palette_with_a_transparent_colour_shows_white_there(tmp_path):
    img = _halves(0, 1, "P")
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red (transparent), index 1 blue
    img.save(tmp_path / "p.png", transparency=0)
    assert Image.open(tmp_path / "p.png").mode == "P" and Image.open(tmp_path / "p.png").info["transparency"] == 0
    assert _sides(load_image(tmp_path / "p.png")) == ([255, 255, 255], [0, 0, 255])


def test_one_bit_black_and_white_becomes_0_and_255(tmp_path):
    _halves(0, 1, "1").save(tmp_path / "bw.png")
    assert Image.open(tmp_path / "bw.png").mode == "1"
    assert _sides(load_image(tmp_path / "bw.png")) == ([0] * 3, [255] * 3)


def test_32_bit_integer_is_read_as_16_bit_and_float_as_0_to_255(tmp_path):
    """Mode I (here a 32-bit TIFF) keeps its top 8 of 16 bits; mode F is read as Pillow reads it, 0-255, clipped."""
    _halves(32896, 65535, "I").save(tmp_path / "int.tif")  # 0x8080 -> 128, 0xFFFF -> 255
    assert Image.open(tmp_path / "int.tif").mode == "I"
    assert _sides(load_image(tmp_path / "int.tif")) == ([128] * 3, [255] * 3)
    _halves(77.0, 300.0, "F").save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    assert _sides(load_image(tmp_path / "float.tif")) == ([77] * 3, [255] * 3)
    Image.new("F", (20, 20), -5.0).save(tmp_path / "negative.tif")
    assert load_image(tmp_path / "negative.tif").unique().tolist() == [0]


# What each EXIF orientation means, written from the EXIF specification (stored pixels -> as shown), not from Pillow.
_SHOWN = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_on_a_non_square_picture(tmp_path, orientation):
    """48 wide, 32 high, four coloured quadrants: each orientation shows them in another of the 8 arrangements."""
    stored = np.zeros((32, 48, 3), dtype=np.uint8)
    stored[:16, :24], stored[:16, 24:], stored[16:, :24], stored[16:, 24:] = (
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 0),
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    shown = np.ascontiguousarray(_SHOWN[orientation](stored))
    assert shown.shape[:2] == ((32, 48) if orientation <= 4 else (48, 32))
    expected = np.asarray(Image.fromarray(shown).resize((32, 32), Image.Resampling.BICUBIC))
    assert torch.equal(load_image(tmp_path / "photo.png"), torch.from_numpy(expected.copy()).permute(2, 0, 1))


# ----------------------------------------------------------------------------- pictures too large to decode


def _blank_png(path, width: int, height: int) -> None:
    """A valid, all-black 1-bit PNG: a few KB on disk, width x height bytes once Pillow decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any PNG's pixels are decoded."""
    from PIL import PngImagePlugin

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("decoded the pixels"))


def test_a_picture_over_the_pixel_budget_is_refused_before_decoding(tmp_path, run_dir, no_decoding, capsys):
    """Between 1x and 2x Pillow's limit Pillow only warns and decodes; here it is refused from the header alone."""
    width, height = 10_000, 9_000  # 90 megapixels: just over Pillow's 89.5, under twice that
    assert Image.MAX_IMAGE_PIXELS < width * height < 2 * Image.MAX_IMAGE_PIXELS
    big, bomb = tmp_path / "big.png", tmp_path / "bomb.png"
    _blank_png(big, width, height)
    _blank_png(bomb, 20_000, 10_000)  # 200 megapixels: Pillow's own DecompressionBombError, in open()
    assert big.stat().st_size < 50_000 and bomb.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape either
        assert main(["predict", str(run_dir), str(big), str(bomb), "--device", "cpu"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"error: {big}: 10000x9000 pixels (90 megapixels) is over the limit of 89.5 megapixels, refused before decoding "
        f"it; shrink the picture first (any size down to 32x32 will do)",
        f"error: {bomb}: too large to open safely, refused before decoding it (Image size (200000000 pixels) exceeds "
        f"limit of {2 * Image.MAX_IMAGE_PIXELS} pixels, could be decompression bomb DOS attack.); shrink the picture "
        f"first (any size down to 32x32 will do)",
    ]


def test_the_pixel_budget_can_be_lowered(tmp_path):
    Image.new("RGB", (100, 60)).save(tmp_path / "small.png")
    assert load_image(tmp_path / "small.png", max_pixels=6000).shape == (3, 32, 32)
    with pytest.raises(ImageError, match=r"100x60 pixels \(0.006 megapixels\) is over the limit of 0.006 megapixels"):
        load_image(tmp_path / "small.png", max_pixels=5999)
