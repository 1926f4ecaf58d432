"""Test-time augmentation given only to the least confident images (tta_share)."""

import pytest
import torch

from cifar_utils.core.config import TrainConfig
from cifar_utils.core.evaluation import least_confident, predict_logits
from cifar_utils.core.fastnet import FastNet
from cifar_utils.errors import ConfigError


def test_least_confident_picks_the_rows_with_the_lowest_softmax_maximum():
    logits = torch.tensor([[5.0, 0, 0], [0.1, 0, 0], [2.0, 0, 0], [0, 0, 0], [9.0, 0, 0]])
    assert least_confident(logits, 0.4).tolist() == [1, 3]
    assert least_confident(logits, 0.5).tolist() == [1, 2, 3]  # ceil(2.5): never fewer than asked
    assert least_confident(logits, 1.0).tolist() == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def net_and_images():
    torch.manual_seed(0)
    net = FastNet(widths=(8, 16, 16)).eval()
    with torch.no_grad():  # random BN statistics so the predictions spread in confidence
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
        net.head.weight.mul_(50)
    return net, torch.rand(60, 3, 32, 32)


def test_a_share_of_the_images_gets_the_views_and_the_rest_keep_their_plain_logits(net_and_images):
    net, images = net_and_images
    full, plain = predict_logits(net, images, tta="mirror+translate", with_plain=True, batch_size=16)
    part, part_plain = predict_logits(
        net, images, tta="mirror+translate", tta_share=0.25, with_plain=True, batch_size=16
    )
    chosen = least_confident(plain, 0.25)
    rest = torch.ones(len(images), dtype=torch.bool)
    rest[chosen] = False
    assert len(chosen) == 15
    torch.testing.assert_close(part_plain, plain)
    torch.testing.assert_close(part[rest], plain[rest])
    torch.testing.assert_close(part[chosen], full[chosen])
    assert not torch.allclose(full[chosen], plain[chosen])  # the views did change those logits


def test_tta_share_of_one_is_the_full_augmentation(net_and_images):
    net, images = net_and_images
    torch.testing.assert_close(
        predict_logits(net, images, tta="mirror", tta_share=1.0), predict_logits(net, images, tta="mirror")
    )


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_a_tta_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ConfigError, match="tta_share must be in"):
        TrainConfig(tta_share=share).validate()
