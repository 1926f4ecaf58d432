"""The corrupted test sets: uint8 in and out, deterministic by seed, worse with severity, cached on disk,
and equal to the reference implementations where one is at hand (torchvision, PIL, colorsys)."""

import colorsys
import io

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from cifar_utils.analysis import corruptions as C
from cifar_utils.errors import ConfigError

RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "elastic_transform"}


def _smooth_images(n=48, seed=0):
    """Natural-looking stand-ins: a smooth random colour field and a vertical edge per image (random pixels
    would make every blur look maximal and every shift look like noise)."""
    gen = torch.Generator().manual_seed(seed)
    field = C._blur(torch.rand(n, 3, 32, 32, generator=gen), 3.0, 3.0)
    low, high = field.amin((1, 2, 3), keepdim=True), field.amax((1, 2, 3), keepdim=True)
    edge = (torch.arange(32) >= torch.randint(8, 24, (n, 1, 1, 1), generator=gen)).float()
    return ((0.6 * (field - low) / (high - low) + 0.4 * edge) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def images():
    return _smooth_images()


def _mad(a, b):
    return (a.float() - b.float()).abs().mean().item()


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_shape_dtype_range_and_change(name, images):
    for severity in C.SEVERITIES:
        out = C.corrupt(images, name, severity)
        assert out.shape == images.shape and out.dtype == torch.uint8
        assert 0 <= int(out.min()) and int(out.max()) <= 255
        assert _mad(out, images) > 0.1, f"{name} severity {severity} left the images nearly as they were"


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_the_same_call_gives_the_same_images_and_the_seed_matters_only_where_there_is_chance(name, images):
    a, b = C.corrupt(images, name, 3, seed=0), C.corrupt(images, name, 3, seed=0)
    assert torch.equal(a, b)
    other = C.corrupt(images, name, 3, seed=1)
    assert torch.equal(a, other) != (name in RANDOM)


@pytest.mark.parametrize("name", sorted(set(C.CORRUPTIONS) - C.NOT_MONOTONE))
def test_severity_moves_the_images_further(name, images):
    """Mean absolute difference from the clean images grows with severity. Motion blur's severities 3 and 4
    differ only in a radius the Gaussian has already faded by, so a step may hold level within 3%."""
    mads = [_mad(C.corrupt(images, name, s), images) for s in C.SEVERITIES]
    for before, after in zip(mads, mads[1:]):
        assert after >= 0.97 * before, mads
    assert mads[-1] > 1.5 * mads[0], mads


def test_saturate_lowers_then_raises_saturation(images):
    """The paper's saturate is not ordered by change: severities 1-2 desaturate (2 more), 3-5 saturate (5 most)."""

    def mean_saturation(x):
        x = x.float()
        value, low = x.amax(1), x.amin(1)
        return ((value - low) / value.clamp(min=1)).mean().item()

    clean = mean_saturation(images)
    s = [mean_saturation(C.corrupt(images, "saturate", k)) for k in C.SEVERITIES]
    assert s[1] < s[0] < clean < s[2] < s[3] < s[4]


def test_elastic_severity_one_is_a_pure_affine_shift(images):
    """alpha 0 at severity 1: the image moves as a whole, so a flat image stays flat (no local warping)."""
    flat = torch.full((4, 3, 32, 32), 77, dtype=torch.uint8)
    assert torch.equal(C.corrupt(flat, "elastic_transform", 1), flat)


# ----------------------------------------------------------------------------- against reference implementations


@pytest.mark.parametrize("sigma,truncate", [(0.4, 4.0), (1.0, 4.0), (6.4, 3.0)])
def test_the_separable_blur_is_torchvisions_gaussian_blur(sigma, truncate):
    x = torch.rand(6, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    size = 2 * int(truncate * sigma + 0.5) + 1
    assert torch.allclose(C._blur(x, sigma, truncate), TF.gaussian_blur(x, [size, size], [sigma, sigma]), atol=1e-5)


def test_jpeg_equals_pil_at_the_papers_qualities(images):
    for severity, quality in zip(C.SEVERITIES, C.JPEG_QUALITY):
        expected = []
        for image in images[:8].permute(0, 2, 3, 1).numpy():
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=quality)
            expected.append(np.asarray(Image.open(buffer)))
        assert torch.equal(
            C.corrupt(images[:8], "jpeg_compression", severity),
            torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2),
        )


def test_pixelate_follows_pil_box_resizing(images):
    for severity, share in zip(C.SEVERITIES, C.PIXELATE):
        side = int(32 * share)
        expected = torch.from_numpy(
            np.stack(
                [
                    np.asarray(Image.fromarray(im).resize((side, side), Image.BOX).resize((32, 32), Image.BOX))
                    for im in images.permute(0, 2, 3, 1).numpy()
                ]
            )
        ).permute(0, 3, 1, 2)
        ours = C.corrupt(images, "pixelate", severity)
        assert _mad(ours, expected) < 0.5  # PIL rounds between its passes as well
        assert (ours.int() - expected.int()).abs().max() <= 2


@pytest.mark.parametrize(
    "name,change",
    [
        ("brightness", lambda h, s, v, c: (h, s, min(v + c, 1.0))),
        ("saturate", lambda h, s, v, c: (h, min(max(s * c[0] + c[1], 0.0), 1.0), v)),
    ],
)
def test_hsv_corruptions_agree_with_colorsys(name, change, images):
    pixels = images[:4].permute(0, 2, 3, 1).reshape(-1, 3).float() / 255
    params = C.BRIGHTNESS if name == "brightness" else C.SATURATE
    for severity in C.SEVERITIES:
        ours = C.CORRUPTIONS[name](pixels.T.reshape(1, 3, -1, 1), severity, None)[0, :, :, 0].T
        expected = torch.tensor(
            [colorsys.hsv_to_rgb(*change(*colorsys.rgb_to_hsv(*p.tolist()), params[severity - 1])) for p in pixels]
        )
        grey = pixels.amax(1) == pixels.amin(1)  # no hue: see the module's table for saturate
        assert torch.allclose(ours[~grey], expected[~grey].float(), atol=1e-5)


# ----------------------------------------------------------------------------- the cache


def test_cache_hit_returns_the_same_images_without_making_them(tmp_path, images):
    first = C.cached(images, "gaussian_noise", 2, seed=5, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert not first.from_cache and len(files) == 1 and files[0].name.startswith("gaussian_noise-s2-")
    assert first.seconds > 0 and first.threads >= 1
    again = C.cached(images, "gaussian_noise", 2, seed=5, cache_dir=tmp_path)
    assert again.from_cache and torch.equal(again.images, first.images) and again.seconds == first.seconds
    assert torch.equal(first.images, C.corrupt(images, "gaussian_noise", 2, seed=5))


def test_cache_key_changes_with_every_input(tmp_path, images):
    sha = C.images_digest(images)
    keys = {
        C.cache_key("contrast", 1, 0, sha),
        C.cache_key("contrast", 2, 0, sha),
        C.cache_key("contrast", 1, 1, sha),
        C.cache_key("brightness", 1, 0, sha),
        C.cache_key("contrast", 1, 0, C.images_digest(images[:10])),
    }
    assert len(keys) == 5


def test_a_damaged_cache_file_is_made_again(tmp_path, images):
    made = C.cached(images, "contrast", 4, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(b"not a torch file")
    again = C.cached(images, "contrast", 4, cache_dir=tmp_path)
    assert not again.from_cache and torch.equal(again.images, made.images)
    assert C.cached(images, "contrast", 4, cache_dir=tmp_path).from_cache


def test_requested_lists():
    assert C.requested() == (list(C.CORRUPTIONS), list(C.SEVERITIES))
    assert C.requested("contrast", 3) == (["contrast"], [3])
    assert C.requested(("pixelate", "contrast"), [5, 1]) == (["pixelate", "contrast"], [5, 1])
    with pytest.raises(ConfigError, match="unknown corruption 'Contrast'"):
        C.requested(["Contrast"])
    with pytest.raises(ConfigError, match="severity must be one of"):
        C.requested(None, [True])


def test_bad_requests_are_refused(images):
    with pytest.raises(ConfigError, match="unknown corruption 'fog'; choose from: gaussian_noise"):
        C.corrupt(images, "fog", 1)
    with pytest.raises(ConfigError, match=r"severity must be one of \(1, 2, 3, 4, 5\), got 6"):
        C.corrupt(images, "contrast", 6)
    with pytest.raises(ConfigError, match="uint8 images shaped"):
        C.corrupt(images.float(), "contrast", 1)
