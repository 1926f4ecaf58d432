"""The fast recipe: whitening, alternating flip, weight averaging, TTA, the fast net, fit and resume."""

import json

import pytest
import torch

from cifar_utils.core import augment, fastnet, optim
from cifar_utils.core.config import TrainConfig, recipe_config
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.evaluation import evaluate
from cifar_utils.core.models import build_model
from cifar_utils.core.optim import lr_factor, make_optimizer, param_groups
from cifar_utils.errors import TrainingInterrupted
from cifar_utils.runs.training import fit

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


def test_fast_net_shape_and_batchnorm_keeps_bf16_activations_with_fp32_statistics():
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
    assert len(bn) == 6 and set(bn.values()) == {torch.bfloat16}  # no cast to fp32 and back around each norm
    assert dtypes["net.blocks.0.conv1"] == torch.bfloat16  # autocast really was on
    norm = model.net.blocks[0].norm1
    assert not norm.weight.requires_grad and norm.bias.requires_grad and norm.momentum == pytest.approx(0.4)
    assert norm.running_mean.dtype == torch.float32 and norm.bias.dtype == torch.float32


def test_batchnorm_on_bf16_input_matches_fp32_within_bf16_rounding():
    norm = fastnet.FrozenScaleBatchNorm(8).train()
    x = torch.randn(64, 8, 6, 6) * 3 + 1
    exact = fastnet.FrozenScaleBatchNorm(8).train()(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = norm(x.bfloat16())
    assert mixed.dtype == torch.bfloat16
    assert (mixed.float() - exact).abs().max() < 0.05  # bf16 keeps 8 bits: |x| <~ 4 rounds by <= 2^-6
    assert torch.allclose(norm.running_mean, x.mean((0, 2, 3)) * 0.4, atol=1e-2)  # statistics from the batch


def test_dirac_init_passes_the_input_through():
    conv = fastnet.DiracConv(4, 6)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(conv(x)[:, :4], x)


def test_param_groups_scale_bias_lr_and_keep_the_seed_unchanged():
    model = build_model("fast", widths=(8, 8, 8))
    config = recipe_config("fast10", batch_size=512)
    weights, biases = param_groups(config, model)
    assert weights["lr_scale"] == 0.5 and biases["lr_scale"] == 0.5 * 64
    assert biases["weight_decay"] * 64 == pytest.approx(weights["weight_decay"])  # same decay per step
    assert all(p.ndim == 1 for p in biases["params"]) and len(biases["params"]) == 7  # 6 BN + whitening bias
    seed = make_optimizer(TrainConfig(), build_model("seed_cnn"))
    assert len(seed.param_groups) == 1 and "lr_scale" not in seed.param_groups[0]


def test_warmup_fraction_then_linear_decay():
    config = recipe_config("fast10", epochs=1)
    assert lr_factor(config, 19, 100) == pytest.approx(1.0)
    assert lr_factor(config, 9, 100) == pytest.approx(0.5)
    assert lr_factor(config, 60, 100) == pytest.approx(0.5)


def _fast(recipe="fast", **kw):
    from cifar_utils.core.config import RECIPES

    base = dict(
        epochs=1,
        batch_size=64,
        val_size=50,
        device="cpu",
        precision="fp32",
        eval_batch_size=200,
        model_kwargs={**RECIPES[recipe].get("model_kwargs", {}), **NARROW},
    )
    return recipe_config(recipe, **{**base, **kw})


@pytest.mark.parametrize("recipe", ["fast", "fast10"])
def test_fast_recipe_smoke_fit(tiny, recipe):
    result = fit(_fast(recipe), dataset=tiny, progress=False, log=lambda *_: None)
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))
    m = result.metrics
    assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["test_accuracy_no_tta"] <= 1 and m["tta"] == "mirror+translate"
    plain = evaluate(result.model, tiny.test_images, tiny.test_labels, batch_size=200)
    assert plain["accuracy"] == pytest.approx(m["test_accuracy_no_tta"])


@pytest.mark.parametrize("recipe", ["fast", "fast10"])
def test_fast_recipe_trains_on_all_images_and_resumes_exactly(tiny, tmp_path, monkeypatch, recipe):
    import cifar_utils.runs.training as T

    # 4 steps an epoch: the lookahead update at step 5 needs the averager state restored from epoch 1 (fast10);
    # Muon's and SGD's momentum buffers and the whitening bias's own schedule must survive it too (fast).
    extra = {"whiten_bias_epochs": 1} if recipe == "fast" else {}  # its lr reaches zero inside epoch 1
    config = _fast(recipe, epochs=2, val_size=0, train_subset=256, tta="none", **extra)
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


# ----------------------------------------------------------------------------- Muon


def test_orthogonalize_equalises_the_singular_values():
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(32, 32, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(288, 32, generator=gen))
    spread = torch.logspace(-1.5, 0, 32)  # singular values 30x apart
    matrix = u @ torch.diag(spread) @ v.T
    out = optim.orthogonalize(matrix, steps=5, dtype=torch.float32)
    singular = torch.linalg.svdvals(out)
    assert singular.max() / singular.min() < 2.5 and singular.max() < 1.3  # ~[0.7, 1.2], not exactly 1
    direction = (out * (u @ v.T)).sum() / (out.norm() * (u @ v.T).norm())
    assert direction > 0.95  # the same directions as U V^T
    assert optim.orthogonalize(matrix.T, steps=5, dtype=torch.float32).shape == (288, 32)  # tall matrices too


def test_muon_sgd_matches_torch_sgd_on_its_sgd_groups():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    ours = optim.MuonSGD(
        [{"params": list(a.parameters()), "weight_decay": 0.1}],
        lr=0.05,
        momentum=0.85,
        nesterov=True,
        muon_momentum=0.6,
    )
    reference = torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.85, nesterov=True, weight_decay=0.1)
    for step in range(4):
        x = torch.randn(8, 4)
        for model, opt in ((a, ours), (b, reference)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_muon_step_renormalises_the_filter_and_moves_it_by_lr_along_an_orthogonal_update():
    conv = torch.nn.Conv2d(4, 8, 3, bias=False)
    opt = optim.MuonSGD(
        [{"params": [conv.weight], "muon": True}],
        lr=0.1,
        momentum=0.85,
        nesterov=True,
        muon_momentum=0.6,
        ns_dtype=torch.float32,
    )
    conv.weight.grad = torch.randn_like(conv.weight)
    before = conv.weight.detach().clone()
    opt.step()
    renormalised = before * (8**0.5 / before.norm())
    step = (renormalised - conv.weight.detach()).reshape(8, -1) / 0.1
    assert 0.5 < torch.linalg.svdvals(step).min() and torch.linalg.svdvals(step).max() < 1.3
    assert "momentum_buffer" in opt.state_dict()["state"][0]  # checkpointed with the run


def test_the_whitening_bias_trains_only_for_its_first_epochs():
    model = build_model("fast", widths=(8, 8, 8))
    config = recipe_config("fast", epochs=8, whiten_bias_epochs=2)
    opt = make_optimizer(config, model)
    whiten = next(g for g in opt.param_groups if "until_fraction" in g)
    filters = next(g for g in opt.param_groups if g["muon"])
    assert whiten["params"] == [model.net.whiten.bias] and len(filters["params"]) == 6
    lrs = []
    for step in (0, 10, 25, 50, 99):
        optim.set_learning_rates(config, opt, step, 100)
        lrs.append((whiten["lr"], filters["lr"]))
    assert lrs[0] == (pytest.approx(0.24 * 106 / 0.24), pytest.approx(0.24))
    assert lrs[1][0] == pytest.approx(106 * (1 - 10 / 25)) and lrs[2][0] == 0.0 and lrs[4][0] == 0.0
    assert lrs[3][1] == pytest.approx(0.12) and lrs[4][1] == pytest.approx(0.24 * 0.01)


def test_without_whitening_the_first_conv_is_trained_from_a_random_start_not_fitted():
    from cifar_utils.core.fastnet import FastNet

    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.full((3,), 120.0), torch.full((3,), 60.0)
    fitted, learned = FastNet(widths=(8, 16, 16)), FastNet(widths=(8, 16, 16), whiten=False)
    before = [m.whiten.weight.clone() for m in (fitted, learned)]
    for m in (fitted, learned):
        m.initialize_from_data(mean, std, images)
    assert not torch.equal(fitted.whiten.weight, before[0]) and not fitted.whiten.weight.requires_grad
    assert torch.equal(learned.whiten.weight, before[1]) and learned.whiten.weight.requires_grad


@pytest.mark.parametrize("size", [3, 7])
def test_the_matmul_convolution_equals_conv2d_forward_and_backward(size):
    shifted_views_conv = fastnet.shifted_views_conv
    torch.manual_seed(0)
    x = torch.randn(4, 16, size, size).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    w = torch.randn(8, 16, 3, 3, requires_grad=True)
    g = torch.randn(4, 8, size, size)
    ours = shifted_views_conv(x, w)
    (ours * g).sum().backward()
    ours_grads = x.grad.clone(), w.grad.clone()
    x.grad, w.grad = None, None
    reference = torch.nn.functional.conv2d(x, w, padding=1)
    (reference * g).sum().backward()
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours_grads[0], x.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours_grads[1], w.grad, rtol=1e-4, atol=1e-4)


def test_the_matmul_path_is_taken_only_for_small_maps_and_changes_no_output(monkeypatch):
    torch.manual_seed(0)
    plain = fastnet.FastNet(widths=(16, 32, 32))
    small = fastnet.FastNet(widths=(16, 32, 32), matmul_max_size=7)
    small.load_state_dict(plain.state_dict())
    calls = []
    original = fastnet.shifted_views_conv

    def counted(x, w):
        calls.append(tuple(x.shape[-2:]))
        return original(x, w)

    monkeypatch.setattr(fastnet, "shifted_views_conv", counted)
    x = torch.randn(2, 3, 32, 32)
    out = small(x)
    assert sorted(calls) == [(3, 3), (7, 7), (7, 7)]  # block 1's second conv, block 2's two; never 31x31 or 15x15
    calls.clear()
    torch.testing.assert_close(out, plain(x), rtol=1e-4, atol=1e-4)
    assert calls == []  # the default leaves every convolution to conv2d
