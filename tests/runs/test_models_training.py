import math

import pytest
import torch

from cifar_utils.analysis.tables import history_table
from cifar_utils.core.config import TrainConfig
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.evaluation import evaluate
from cifar_utils.core.models import available_models, build_model, count_macs
from cifar_utils.core.optim import lr_factor
from cifar_utils.errors import ConfigError
from cifar_utils.runs import run_files
from cifar_utils.runs.training import fit, fit_or_reuse


@pytest.fixture(scope="module")
def tiny(synthetic_root):
    return load_cifar10(synthetic_root, download=False, verify=False)


@pytest.mark.parametrize("name", available_models())
def test_every_model_maps_uint8_images_to_ten_logits(name):
    model = build_model(name).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        out = model(images)
    assert out.shape == (2, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_unknown_model_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*seed_cnn"):
        build_model("nope")


def test_count_macs_of_a_single_conv():
    model = build_model("seed_cnn")
    assert count_macs(model) > 0
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv) == 32 * 32 * 8 * 3 * 9


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("epochs", -3),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("optimizer", "rmsprop"),
        ("device", "tpu"),
        ("precision", "int8"),
        ("augment", "mixup"),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field.replace("_", "[_ ]") if field not in ("lr",) else "lr"):
        TrainConfig(**{field: value}).validate()


def test_schedules():
    cfg = TrainConfig(epochs=2, schedule="onecycle", warmup_epochs=1)
    assert lr_factor(cfg, 0, 100) == pytest.approx(1 / 50)
    assert lr_factor(cfg, 49, 100) == pytest.approx(1.0)
    assert lr_factor(cfg, 99, 100) < 0.05
    cos = TrainConfig(epochs=2, schedule="cosine")
    assert lr_factor(cos, 0, 100) == pytest.approx(1.0) and lr_factor(cos, 50, 100) == pytest.approx(0.5)
    assert lr_factor(TrainConfig(), 77, 100) == 1.0


def _small(**kw):
    base = dict(epochs=3, batch_size=50, val_size=50, lr=3e-3, device="cpu", precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


def test_short_training_lowers_the_loss(tiny):
    result = fit(_small(epochs=4), dataset=tiny, progress=False, log=lambda *_: None)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.metrics["test_accuracy"] is not None and 0 <= result.metrics["test_accuracy"] <= 1


def test_seeded_runs_are_reproducible(tiny):
    a = fit(_small(epochs=2, augment="flip+translate", seed=5), dataset=tiny, progress=False, log=lambda *_: None)
    b = fit(_small(epochs=2, augment="flip+translate", seed=5), dataset=tiny, progress=False, log=lambda *_: None)
    c = fit(_small(epochs=2, augment="flip+translate", seed=6), dataset=tiny, progress=False, log=lambda *_: None)
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert strip(a.history) != strip(c.history)


def test_run_folder_and_checkpoint_round_trip(tiny, tmp_path):
    run_dir = tmp_path / "run"
    result = fit(_small(epochs=2), dataset=tiny, run_dir=run_dir, progress=False, log=lambda *_: None)
    for name in (run_files.CONFIG, run_files.HISTORY, run_files.METRICS, run_files.CHECKPOINT, run_files.CURVES):
        assert (run_dir / name).stat().st_size > 0, name
    assert len(run_files.read_history(run_dir / run_files.HISTORY)) == 2
    metrics = run_files.read_json(run_dir / run_files.METRICS)
    assert {"git_commit", "torch", "device", "seed"} <= set(metrics["provenance"])
    loaded = run_files.load_run(run_dir)
    assert loaded.config == result.config and len(loaded.history) == 2
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(tiny.test_images[:20]), result.model.cpu()(tiny.test_images[:20]))


def test_history_table_has_the_seed_format():
    table = history_table(
        [
            {
                "epoch": 1,
                "train_loss": 1.45991,
                "train_acc": 0.4689,
                "val_loss": 1.1647,
                "val_acc": 0.5852,
                "lr": 1e-3,
                "seconds": 1.0,
            }
        ]
    )
    lines = table.splitlines()
    assert lines[0] == "| Epoch | Train Loss | Train Accuracy | Validation Loss | Validation Accuracy |"
    assert lines[2] == "| 1 | 1.4599 | 46.89% | 1.1647 | 58.52% |"


def test_evaluate_matches_manual_accuracy(tiny):
    model = build_model("seed_cnn").eval()
    result = evaluate(model, tiny.test_images, tiny.test_labels, batch_size=33)
    with torch.no_grad():
        logits = model(tiny.test_images)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == tiny.test_labels).float().mean().item())
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, tiny.test_labels).item(), rel=1e-5)
    assert not math.isnan(result["loss"])


def test_fit_or_reuse_loads_a_finished_run_and_never_replaces_a_changed_one_unasked(tiny, tmp_path):
    run_dir = tmp_path / "run"
    first = fit(_small(epochs=1), dataset=tiny, run_dir=run_dir, progress=False, log=lambda *_: None)
    said = []
    again = fit_or_reuse(_small(epochs=1), dataset=tiny, run_dir=run_dir, progress=False, log=said.append)
    assert said and said[0].startswith("reusing the finished run")
    assert again.history == first.history and again.metrics == run_files.read_json(run_dir / run_files.METRICS)
    before = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    with pytest.raises(ConfigError, match=r"another configuration \(lr: 0.003 in the run, 0.001 now\).*OVERWRITE"):
        fit_or_reuse(_small(epochs=1, lr=1e-3), dataset=tiny, run_dir=run_dir, progress=False, log=said.append)
    assert {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()} == before
    said.clear()
    changed = fit_or_reuse(
        _small(epochs=1, lr=1e-3), dataset=tiny, run_dir=run_dir, overwrite=True, progress=False, log=said.append
    )
    assert not any(s.startswith("reusing") for s in said) and changed.config.lr == 1e-3
    said.clear()
    fit_or_reuse(_small(epochs=1, lr=1e-3), dataset=tiny, run_dir=run_dir, reuse=False, progress=False, log=said.append)
    assert not any(s.startswith("reusing") for s in said)


def test_fit_or_reuse_reads_a_committed_run_and_writes_only_its_own_folder(tiny, tmp_path):
    committed = tmp_path / "outputs" / "runs" / "base"
    fit(_small(epochs=1), dataset=tiny, run_dir=committed, progress=False, log=lambda *_: None)
    before = {f.name: f.read_bytes() for f in committed.iterdir() if f.is_file()}
    mine = tmp_path / "scratch" / "runs" / "base"
    reused = fit_or_reuse(
        _small(epochs=1), dataset=tiny, run_dir=mine, reuse_from=[committed], progress=False, log=lambda *_: None
    )
    assert reused.reused and reused.run_dir == committed and not mine.exists()
    trained = fit_or_reuse(
        _small(epochs=1, lr=1e-3),
        dataset=tiny,
        run_dir=mine,
        reuse_from=[committed],
        progress=False,
        log=lambda *_: None,
    )
    assert not trained.reused and (mine / run_files.METRICS).is_file()
    assert {f.name: f.read_bytes() for f in committed.iterdir() if f.is_file()} == before


def test_an_unreadable_finished_run_is_named_and_trained_again(tiny, tmp_path):
    run_dir = tmp_path / "run"
    fit(_small(epochs=1), dataset=tiny, run_dir=run_dir, progress=False, log=lambda *_: None)
    (run_dir / run_files.HISTORY).write_text("epoch\n")  # truncated: no epoch recorded
    said = []
    record = fit_or_reuse(_small(epochs=1), dataset=tiny, run_dir=run_dir, progress=False, log=said.append)
    assert not record.reused
    assert any(f"{run_dir}" in s and "cannot be read" in s and "training it again" in s for s in said)


def test_a_changed_parameter_names_a_new_run_folder():
    from cifar_utils.notebook import training_config

    assert run_files.default_run_name("seed", training_config("seed")) == "seed-seed_cnn-seed0"
    short = training_config("seed", epochs=1, train_subset=2000)
    assert run_files.default_run_name("seed", short) == "seed-seed_cnn-seed0-epochs1-train_subset2000"
    many = training_config("seed", epochs=3, lr=0.01, batch_size=64, weight_decay=0.1)
    assert run_files.default_run_name("seed", many).startswith("seed-seed_cnn-seed0-cfg")
    assert run_files.default_run_name("seed", many) != run_files.default_run_name(
        "seed", training_config("seed", epochs=3, lr=0.02, batch_size=64, weight_decay=0.1)
    )
    assert run_files.default_run_name("seed", training_config("seed", True), smoke=True) == "seed-seed_cnn-seed0-smoke"
