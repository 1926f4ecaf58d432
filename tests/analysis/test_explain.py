"""Grad-CAM and saliency on models whose answer is known: a logit that sees only one region of the image."""

import pytest
import torch
from torch import nn

from cifar_utils.analysis import explanations as X
from cifar_utils.core.models import build_model
from cifar_utils.errors import ConfigError


class _Region(nn.Module):
    """Zeroes the image outside rows r0:r1, columns c0:c1."""

    def __init__(self, r0, r1, c0, c1):
        super().__init__()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., r0:r1, c0:c1] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        return x * self.mask


def _region_model(region, seed=0):
    """Every logit depends on the pixels of `region` only; class 3's head weights are positive, so its
    Grad-CAM is positive wherever the (non-negative) features are."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        _Region(*region),
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    with torch.no_grad():
        model[-1].weight[3] = torch.rand(8) + 0.1
    return model


def _inside(region, margin=0):
    r0, r1, c0, c1 = region
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[max(0, r0 - margin) : r1 + margin, max(0, c0 - margin) : c1 + margin] = True
    return mask


@pytest.mark.parametrize("region", [(4, 12, 20, 28), (18, 30, 2, 10)])
def test_saliency_lies_only_on_the_region_the_logit_sees(region):
    model = _region_model(region)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    maps = X.saliency(model, images, targets=3)
    assert maps.shape == (4, 32, 32) and maps.dtype == torch.float32
    inside = _inside(region)
    assert maps[:, ~inside].abs().max() == 0  # no gradient reaches a pixel the logit never sees
    assert (maps[:, inside] > 0).float().mean() > 0.5


@pytest.mark.parametrize("region", [(4, 12, 20, 28), (18, 30, 2, 10)])
def test_grad_cam_concentrates_on_the_region(region):
    model = _region_model(region)
    images = torch.randint(1, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    cams = X.grad_cam(model, images, targets=torch.full((4,), 3))  # default layer: the only conv
    assert cams.shape == (4, 32, 32) and (cams >= 0).all()
    # The conv's 3x3 reach and the bilinear upsampling spread it by at most a pixel or two.
    near = _inside(region, margin=2)
    share = cams[:, near].sum(1) / cams.flatten(1).sum(1)
    assert (share > 0.99).all(), share
    peak = cams.flatten(1).argmax(1)  # the conv responds to the region's edge too: its peak may sit on the ring
    assert _inside(region, margin=1).flatten()[peak].all()


def test_maps_follow_the_region_when_it_moves():
    """The same check must fail for the wrong region: the maps are not just centred blobs."""
    a, b = (4, 12, 20, 28), (18, 30, 2, 10)
    cams = X.grad_cam(
        _region_model(a),
        torch.randint(1, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)),
        3,
    )
    assert cams[:, _inside(b, margin=2)].sum() == 0


def test_last_conv_of_the_project_networks():
    seed = build_model("seed_cnn")
    fast = build_model("fast", widths=(8, 16, 16))
    assert X.last_conv(seed) is [m for m in seed.modules() if isinstance(m, nn.Conv2d)][-1]
    assert X.last_conv(fast) is fast.net.blocks[-1].conv2
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    for model in (seed, fast):
        model.train()
        assert X.grad_cam(model, images, [0, 1, 2]).shape == (3, 32, 32)
        assert X.saliency(model, images, [0, 1, 2]).shape == (3, 32, 32)
        assert model.training  # left as it was found


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="no Conv2d layer"):
        X.last_conv(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)))
    with pytest.raises(ConfigError, match="one target class, or one per image"):
        X.saliency(_region_model((0, 8, 0, 8)), torch.zeros(3, 3, 32, 32, dtype=torch.uint8), [1, 2])


def test_normalise_maps():
    maps = torch.stack([torch.zeros(4, 4), torch.arange(16.0).view(4, 4)])
    out = X.normalise_maps(maps)
    assert out[0].abs().max() == 0 and out[1].max() == 1 and out[1, 0, 0] == 0
