"""Adding a model is one registration: docs/extending.md's snippet, written as a module outside the package, trains
through the command line with the seed and the fast recipe, and through notebook 02 (papermill, smoke mode)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from pathlib import Path

import pytest

from cifar_utils.cli import main
from cifar_utils.core import config, models
from cifar_utils.core.augment import AUGMENTATIONS
from cifar_utils.core.config import recipe_config
from cifar_utils.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[2]
MODULE = "my_models"  # the name docs/extending.md gives the module
MODEL, AUGMENTATION = "tiny", "flip+translate1"  # what its snippet registers
FAST = ["--epochs", "1", "--batch-size", "100", "--val-size", "50", "--no-progress", "--device", "cpu"]


def _snippet() -> str:
    """The first Python block of docs/extending.md: the test runs what a reader copies."""
    text = (PROJECT / "docs" / "extending.md").read_text()
    return re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The snippet as a module of the user's in a folder of theirs, imported; its registrations are undone after,
    so no other test sees a model it did not expect (the registries are private to the package: only the
    clean-up reaches into them)."""
    monkeypatch.setattr(config, "_said", set())  # the line on the recipe's dropped options, said once a process
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(_snippet())
    monkeypatch.syspath_prepend(str(folder))
    try:
        yield importlib.import_module(MODULE), folder
    finally:
        sys.modules.pop(MODULE, None)
        models._REGISTRY.pop(MODEL, None)
        AUGMENTATIONS.pop(AUGMENTATION, None)


def _train(synthetic_root, out, *extra) -> int:
    return main(["train", "--data-root", str(synthetic_root), "--no-verify", "--out", str(out), *FAST, *extra])


def test_the_snippet_registers_a_model_with_its_smoke_size_and_options(user_module):
    assert MODEL in models.available_models() and AUGMENTATION in AUGMENTATIONS
    assert models.smoke_kwargs(MODEL) == {"width": 4}
    assert models.model_options(MODEL) == {"width"}  # read from the builder's signature


@pytest.mark.parametrize("recipe", ["seed", "fast"])
def test_a_model_from_outside_the_package_trains_through_the_cli(recipe, user_module, synthetic_root, tmp_path, caplog):
    out = tmp_path / recipe
    with caplog.at_level(logging.WARNING, logger="cifar_utils"):
        assert _train(synthetic_root, out, "--recipe", recipe, "--model", MODEL, "--augment", AUGMENTATION) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["model"], saved["augment"], saved["model_kwargs"]) == (MODEL, AUGMENTATION, {})
    dropped = [r.getMessage() for r in caplog.records if "does not accept the recipe's" in r.getMessage()]
    if recipe == "fast":  # its head_scale and head_init_std are the fast net's, not tiny's: left out, said once
        assert dropped == [
            "recipe 'fast': model 'tiny' does not accept the recipe's head_init_std, head_scale; it trains without them"
        ]
    else:
        assert dropped == []


def test_options_the_user_gives_go_to_the_model_and_unaccepted_ones_are_refused(
    user_module, synthetic_root, tmp_path, capsys
):
    assert recipe_config("fast", model=MODEL, model_kwargs={"width": 8}).model_kwargs == {"width": 8}
    with pytest.raises(ConfigError, match=r"model 'tiny' does not accept head_scale: remove it .* it accepts: width"):
        recipe_config("fast", model=MODEL, model_kwargs={"head_scale": 0.1})
    code = _train(
        synthetic_root, tmp_path / "bad", "--recipe", "fast", "--model", MODEL, "--model-kwargs", '{"depth": 2}'
    )
    err = capsys.readouterr().err
    assert code == 2 and "model 'tiny' does not accept depth" in err and "it accepts: width" in err
    assert not (tmp_path / "bad" / "config.json").exists()


def test_a_registration_is_checked_where_it_is_made():
    with pytest.raises(ConfigError, match="smoke size names depth, which it does not accept"):
        models.register("bad_smoke", smoke={"depth": 2})(lambda width=4: None)
    with pytest.raises(ConfigError, match=r"takes \*\*kwargs; list what it accepts with options="):
        models.register("bad_kwargs", smoke={})(lambda **kwargs: None)
    assert "bad_smoke" not in models.available_models() and "bad_kwargs" not in models.available_models()


@pytest.mark.slow
def test_notebook_02_trains_a_model_its_extra_modules_register(user_module, synthetic_root, tmp_path, monkeypatch):
    import papermill

    _, folder = user_module
    # The kernel is another process: it imports this checkout and the user's folder from PYTHONPATH.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT), str(folder), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("CIFAR_SMOKE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(PROJECT / "notebooks" / "02_training.ipynb"),
        str(tmp_path / "02_training.ipynb"),
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
        parameters={
            "SMOKE": True,
            "EXTRA_MODULES": MODULE,
            "MODEL": MODEL,
            "AUGMENT": AUGMENTATION,
            "DATA_ROOT": str(synthetic_root),
            "VERIFY_DATA": False,
            "OUTPUT_DIR": str(out),
            "VAL_SIZE": 50,
        },
    )
    configs = list((out / "runs").glob("*/config.json"))
    assert len(configs) == 1, configs
    saved = json.loads(configs[0].read_text())
    assert (saved["model"], saved["augment"], saved["epochs"]) == (MODEL, AUGMENTATION, 1)
