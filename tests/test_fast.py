"""The fast recipe: whitening, alternating flip, weight averaging, TTA, the fast net, fit and resume."""
import json

import pytest
import torch

from cifar_utils import augment, fastnet, optim
from cifar_utils.config import TrainConfig, recipe_config
from cifar_utils.data import load_cifar10
from cifar_utils.errors import TrainingInterrupted
from cifar_utils.inference import evaluate
from cifar_utils.models import build_model
from cifar_utils.optim import lr_factor, make_optimizer, param_groups
from cifar_utils.training import fit

NARROW = {"widths": [16, 32, 32]}  # the fast net's structure at a fraction of its FLOPs


@pytest.fixture(scope="module")
def tiny(synthetic_root):
    return load_cifar10(synthetic_root, download=False, verify=False)


def _smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """uint8 images whose neighbouring pixels and channels are correlated, like photographs."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=gen)
    mixed = coarse + 0.5 * coarse.mean(1, keepdim=True)  # correlated channels
    up = torch.nn.functional.interpolate(mixed, size=32, mode="bilinear", align_corners=False)
    noisy = up + 0.05 * torch.rand(n, 3, 32, 32, generator=gen)
    return (255 * noisy / noisy.max()).to(torch.uint8)


def test_whitening_layer_outputs_identity_covariance():
    images = _smooth_images(200)
    x = images.double()
    mean, std = x.mean((0, 2, 3)).view(1, 3, 1, 1), x.std((0, 2, 3)).view(1, 3, 1, 1)
    net = fastnet.FastNet(widths=(8, 8, 8), whiten_eps=1e-9)
    net.initialize_from_data(mean, std, images)
    with torch.no_grad():
        out = net.whiten(((images.float() - mean.float()) / std.float()))
    assert out.shape == (200, 24, 31, 31)
    first = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = torch.cov(first.T)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=2e-2), cov.diag()
    assert first.mean(0).abs().max() < 1e-2  # the bias removes the patch mean
    assert torch.allclose(out[:, 12:], -out[:, :12])  # both signs
    assert not net.whiten.weight.requires_grad


def test_alternating_flip_flips_every_image_in_alternate_epochs_deterministically():
    n = 101
    masks = [augment.alternating_flip_mask(n, seed=3, epoch=e) for e in range(1, 6)]
    assert int(masks[0].sum()) == n // 2  # a random half in epoch 1
    for before, after in zip(masks, masks[1:]):
        assert bool((before ^ after).all())  # every image changes orientation every epoch
    assert torch.equal(masks[0], masks[2]) and torch.equal(masks[1], masks[3])
    assert torch.equal(masks[0], augment.alternating_flip_mask(n, seed=3, epoch=1))  # no hidden state
    assert not torch.equal(masks[0], augment.alternating_flip_mask(n, seed=4, epoch=1))

    images = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8)
    aug = augment.AlternatingFlip(pad=0)
    view1, batch_aug = aug.for_epoch(images, seed=3, epoch=1)
    view2, _ = aug.for_epoch(images, seed=3, epoch=2)
    assert batch_aug is None
    assert torch.equal(view1[masks[0]], images[masks[0]].flip(-1)) and torch.equal(view1[~masks[0]], images[~masks[0]])
    assert torch.equal(view2, torch.where(masks[0][:, None, None, None], images, images.flip(-1)))


@pytest.mark.parametrize("mode", ["ema", "lookahead"])
def test_weight_averaging_math(mode):
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    avg = optim.WeightAverager(model, mode, decay=0.5, every=2)
    with torch.no_grad():
        model.weight.fill_(4.0)
    avg.step(model, 1, 2)  # not a multiple of `every`: nothing happens
    assert float(avg.average[0][0, 0]) == 0.0
    avg.step(model, 2, 2)  # progress 1: d = 0.5 -> avg = 0 + 0.5 * (4 - 0) = 2
    assert float(avg.average[0][0, 0]) == pytest.approx(2.0)
    assert model.weight.detach()[0, 0].item() == (2.0 if mode == "lookahead" else 4.0)
    assert avg.decay_at(1, 2) == pytest.approx(0.5 / 8)  # decay ramps with progress cubed
    other = optim.WeightAverager(model, mode, decay=0.9, every=7)
    other.load_state_dict(avg.state_dict())
    assert (other.decay, other.every) == (0.5, 2) and torch.equal(other.average[0], avg.average[0])
    avg.finalize(model)
    assert model.weight.detach()[0, 0].item() == pytest.approx(2.0)


def test_fast_net_shape_and_fp32_batchnorm_under_autocast():
    model = build_model("fast", widths=(8, 16, 16)).eval()
    dtypes = {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.Conv2d)):
            module.register_forward_hook(lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)
    assert out.shape == (2, 10)
    bn = {k: v for k, v in dtypes.items() if "norm" in k}
    assert len(bn) == 6 and set(bn.values()) == {torch.float32}
    assert dtypes["net.blocks.0.conv1"] == torch.bfloat16  # autocast really was on
    norm = model.net.blocks[0].norm1
    assert not norm.weight.requires_grad and norm.bias.requires_grad and norm.momentum == pytest.approx(0.4)


def test_dirac_init_passes_the_input_through():
    conv = fastnet.DiracConv(4, 6)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(conv(x)[:, :4], x)


def test_param_groups_scale_bias_lr_and_keep_the_seed_unchanged():
    model = build_model("fast", widths=(8, 8, 8))
    config = recipe_config("fast", batch_size=512)
    weights, biases = param_groups(config, model)
    assert weights["lr_scale"] == 0.5 and biases["lr_scale"] == 0.5 * 64
    assert biases["weight_decay"] * 64 == pytest.approx(weights["weight_decay"])  # same decay per step
    assert all(p.ndim == 1 for p in biases["params"]) and len(biases["params"]) == 7  # 6 BN + whitening bias
    seed = make_optimizer(TrainConfig(), build_model("seed_cnn"))
    assert len(seed.param_groups) == 1 and "lr_scale" not in seed.param_groups[0]


def test_warmup_fraction_then_linear_decay():
    config = recipe_config("fast", epochs=1)
    assert lr_factor(config, 19, 100) == pytest.approx(1.0)
    assert lr_factor(config, 9, 100) == pytest.approx(0.5)
    assert lr_factor(config, 60, 100) == pytest.approx(0.5)


def _fast(**kw):
    base = dict(epochs=1, batch_size=64, val_size=50, device="cpu", precision="fp32", model_kwargs=NARROW,
                eval_batch_size=200)
    return recipe_config("fast", **{**base, **kw})


def test_fast_recipe_smoke_fit(tiny):
    result = fit(_fast(), dataset=tiny, progress=False, log=lambda *_: None)
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))
    m = result.metrics
    assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["test_accuracy_no_tta"] <= 1 and m["tta"] == "mirror+translate"
    plain = evaluate(result.model, tiny.test_images, tiny.test_labels, batch_size=200)
    assert plain["accuracy"] == pytest.approx(m["test_accuracy_no_tta"])


def test_fast_recipe_trains_on_all_images_and_resumes_exactly(tiny, tmp_path, monkeypatch):
    import cifar_utils.training as T

    # 4 steps an epoch: the lookahead update at step 5 needs the averager state restored from epoch 1.
    config = _fast(epochs=2, val_size=0, train_subset=256, tta="none")
    straight = fit(config, dataset=tiny, run_dir=tmp_path / "a", progress=False, log=lambda *_: None)
    assert straight.metrics["train_images"] == 256 and straight.metrics["val_accuracy"] is None

    real_run_epoch, calls = T.run_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(T, "run_epoch", interrupted)
    with pytest.raises(TrainingInterrupted):
        fit(config, dataset=tiny, run_dir=tmp_path / "b", progress=False, log=lambda *_: None)
    monkeypatch.setattr(T, "run_epoch", real_run_epoch)
    resumed = fit(config, dataset=tiny, run_dir=tmp_path / "b", resume=True, progress=False, log=lambda *_: None)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda h: json.dumps([{k: v for k, v in row.items() if k != "seconds"} for row in h])  # noqa: E731
    assert strip(straight.history) == strip(resumed.history)  # as JSON: the empty validation's NaNs compare equal
    assert resumed.metrics["test_accuracy"] == straight.metrics["test_accuracy"]


def test_cli_offers_the_fast_recipe():
    from cifar_utils.cli import build_parser, config_from_args

    args = build_parser().parse_args(["train", "--recipe", "fast", "--epochs", "2", "--tta", "mirror"])
    config = config_from_args(args)
    assert config.model == "fast" and config.epochs == 2 and config.tta == "mirror"
