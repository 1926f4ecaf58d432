"""Precision: "auto" decided from the CPU's own instructions, forced by $CIFAR_PRECISION, recorded in the
run, and never mixed silently when a run is resumed or reused on another machine.

The CPU is faked through its flags, so every outcome is tested on every machine. bf16 is emulated
(about 10x slower) on AVX2-only CPUs, so the bf16 runs here are a few tiny steps.
"""

import json

import pytest
import torch

from cifar_utils.core import cpu
from cifar_utils.core.config import TrainConfig
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.evaluation import precision_name, resolve_precision
from cifar_utils.errors import ConfigError, TrainingInterrupted
from cifar_utils.runs import reuse, run_files
from cifar_utils.runs.training import fit, fit_or_reuse

pytestmark = pytest.mark.auto_precision

CPU = torch.device("cpu")
# Flags as /proc/cpuinfo lists them on the CPUs this project has met or could meet.
AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # AMD EPYC (Zen 2/3)
AVX512_NO_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}  # Skylake to Ice Lake
AVX512_BF16 = AVX512_NO_BF16 | {"avx512_bf16"}  # AMD Zen 4/5, Cooper Lake
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8"}  # Sapphire Rapids and later


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend this machine's CPU has the given flags, with no $CIFAR_PRECISION override."""
    monkeypatch.delenv(cpu.PRECISION_ENV, raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # a cap would lower the faked CPU's class
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)

    def fake(flags):
        monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))

    return fake


@pytest.mark.parametrize(
    "flags,isa,auto",
    [
        (AVX2_ONLY, "avx2", "fp32"),
        (AVX512_NO_BF16, "avx512", "fp32"),
        (AVX512_BF16, "avx512_bf16", "bf16"),
        (AMX, "amx", "bf16"),
        (frozenset(), "other", "fp32"),
    ],
)
def test_auto_picks_bf16_only_where_the_cpu_has_bf16_instructions(cpu_with, flags, isa, auto):
    cpu_with(flags)
    assert cpu.isa_class() == isa
    assert precision_name("auto", CPU) == auto
    assert resolve_precision("auto", CPU) == {"fp32": None, "bf16": torch.bfloat16}[auto]
    assert precision_name("fp32", CPU) == "fp32" and precision_name("bf16", CPU) == "bf16"  # explicit wins


@pytest.mark.parametrize(
    "cap,isa",
    [
        ("AVX2", "avx2"),
        ("avx2_vnni", "avx2"),
        ("AVX512_CORE", "avx512"),
        ("AVX512_CORE_BF16", "avx512_bf16"),
        ("AVX512_CORE_AMX", "amx"),
        ("ALL", "amx"),
    ],
)
def test_a_onednn_isa_cap_lowers_the_class_and_what_auto_means(cpu_with, monkeypatch, cap, isa):
    """ONEDNN_MAX_CPU_ISA=AVX2 runs an AVX2-only CPU's kernels, where bf16 is emulated: auto must be fp32 there."""
    cpu_with(AMX)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert cpu.isa_class() == isa
    assert precision_name("auto", CPU) == ("bf16" if isa in ("avx512_bf16", "amx") else "fp32")
    assert cpu.isa_class(AMX) == "amx"  # flags given explicitly describe a CPU, not this process


def test_auto_ignores_onednn_s_wider_bf16_test(cpu_with, monkeypatch):
    """oneDNN calls any AVX-512 CPU bf16-capable; there bf16 is emulated, so auto must stay fp32."""
    cpu_with(AVX512_NO_BF16)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert precision_name("auto", CPU) == "fp32"


def test_the_environment_forces_what_auto_means(cpu_with, monkeypatch):
    cpu_with(AVX2_ONLY)
    monkeypatch.setenv(cpu.PRECISION_ENV, "bf16")
    assert precision_name("auto", CPU) == "bf16"
    assert precision_name("fp32", CPU) == "fp32"  # a pinned precision is not overridden
    monkeypatch.setenv(cpu.PRECISION_ENV, "int8")
    with pytest.raises(ConfigError, match=r"\$CIFAR_PRECISION is 'int8'; set it to one of fp32, bf16, fp16"):
        precision_name("auto", CPU)


@pytest.fixture(scope="module")
def tiny(synthetic_root):
    return load_cifar10(synthetic_root, download=False, verify=False)


def _config(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 50, "val_size": 50, "train_subset": 100, "device": "cpu", **kw})


def _quiet(said=None):
    return said.append if said is not None else (lambda *_: None)


def test_a_run_records_the_precision_it_used_and_the_cpu(cpu_with, tiny, tmp_path):
    cpu_with(AVX2_ONLY)
    result = fit(_config(epochs=1), dataset=tiny, run_dir=tmp_path / "run", progress=False, log=_quiet())
    saved = json.loads((tmp_path / "run" / run_files.CONFIG).read_text())
    prov = run_files.read_json(tmp_path / "run" / run_files.METRICS)["provenance"]
    assert saved["precision"] == "fp32" and result.config.precision == "fp32"
    assert run_files.load_checkpoint(tmp_path / "run")["config"]["precision"] == "fp32"
    assert prov["precision"] == "fp32" and prov["cpu_isa"] == "avx2" and prov["threads"] == torch.get_num_threads()
    assert prov["cpu"] == cpu.cpu_model()


def _interrupted_after_epoch_1(tiny, run_dir, config):
    def ctrl_c_in_epoch_2(line):
        if line.startswith("Epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(config, dataset=tiny, run_dir=run_dir, progress=False, log=ctrl_c_in_epoch_2)


def test_resume_keeps_the_run_s_precision_and_says_so(cpu_with, tiny, tmp_path):
    cpu_with(AVX512_BF16)  # the run begins where auto means bf16...
    _interrupted_after_epoch_1(tiny, tmp_path / "run", _config())
    assert run_files.load_checkpoint(tmp_path / "run")["config"]["precision"] == "bf16"
    cpu_with(AVX2_ONLY)  # ...and is resumed where auto means fp32
    said = []
    result = fit(run_dir=tmp_path / "run", resume=True, dataset=tiny, progress=False, log=said.append)
    assert result.config.precision == "bf16" and result.metrics["provenance"]["precision"] == "bf16"
    assert any(
        "in bf16, the precision it began with (auto would choose fp32 on this machine)" in s and "no native bf16" in s
        for s in said
    ), said


def test_resume_asking_for_another_precision_is_refused(cpu_with, tiny, tmp_path):
    cpu_with(AVX512_BF16)
    _interrupted_after_epoch_1(tiny, tmp_path / "run", _config())
    cpu_with(AVX2_ONLY)
    with pytest.raises(ConfigError, match=r"different configuration \(precision: 'bf16' in the run, 'fp32' now\)"):
        fit(_config(), run_dir=tmp_path / "run", resume=True, dataset=tiny, progress=False, log=_quiet())


def test_a_finished_run_at_another_precision_is_reused_and_says_where_it_was_made(cpu_with, tiny, tmp_path):
    """A clone's committed runs were made where "auto" meant bf16; an fp32 machine reuses them, labelled, rather
    than spend hours training them again. Only reuse=False (--retrain, REUSE=False) trains at this precision."""
    cpu_with(AVX512_BF16)
    fit(_config(epochs=1), dataset=tiny, run_dir=tmp_path / "run", progress=False, log=_quiet())
    said = []
    again = fit_or_reuse(_config(epochs=1), run_dir=tmp_path / "run", dataset=tiny, progress=False, log=said.append)
    assert again.reused and "bf16" in said[0] and "made in" not in said[0]
    cpu_with(AVX2_ONLY)
    said.clear()
    other = fit_or_reuse(_config(epochs=1), run_dir=tmp_path / "run", dataset=tiny, progress=False, log=said.append)
    assert other.reused and other.config.precision == "bf16"
    assert f"made in bf16 on {cpu.cpu_model()} (ISA class avx512_bf16)" in said[0], said
    assert "train it again at this machine's precision" in said[0]
    retrained = fit_or_reuse(
        _config(epochs=1), run_dir=tmp_path / "run", reuse=False, dataset=tiny, progress=False, log=_quiet()
    )
    assert not retrained.reused and retrained.config.precision == "fp32"


def test_a_finished_run_is_not_reused_for_an_explicitly_asked_other_precision(cpu_with, tiny, tmp_path):
    cpu_with(AVX512_BF16)
    fit(_config(epochs=1), dataset=tiny, run_dir=tmp_path / "run", progress=False, log=_quiet())
    other = fit_or_reuse(
        _config(epochs=1, precision="fp32"), run_dir=tmp_path / "run", dataset=tiny, progress=False, log=_quiet()
    )
    assert not other.reused and other.config.precision == "fp32"


def test_a_run_from_before_precisions_were_recorded_keeps_its_dtype(cpu_with, tiny, tmp_path):
    """Older runs saved precision "auto" in the config and the dtype in config.json's provenance."""
    cpu_with(AVX512_BF16)
    fit(_config(epochs=1), dataset=tiny, run_dir=tmp_path / "run", progress=False, log=_quiet())
    for path, key in ((tmp_path / "run" / run_files.CONFIG, None), (tmp_path / "run" / run_files.CHECKPOINT, "config")):
        if key is None:
            saved = run_files.read_json(path)
            saved["precision"], saved["provenance"]["precision"] = "auto", "bfloat16"
            run_files.write_json(path, saved)
        else:
            payload = run_files.load_checkpoint(path)
            payload[key]["precision"] = "auto"
            run_files.save_checkpoint(path, {k: v for k, v in payload.items() if k != "format"})
    cpu_with(AVX2_ONLY)
    said = []
    other = fit_or_reuse(_config(epochs=1), run_dir=tmp_path / "run", dataset=tiny, progress=False, log=said.append)
    assert other.reused and other.config.precision == "bf16" and "made in bf16" in said[0]
    assert reuse.precision_census([tmp_path / "run"], CPU).startswith(
        '1 of the 1 run records were made at another precision than this machine\'s ("auto" is fp32 here)'
    )


def test_the_census_names_each_precision_and_cpu_of_records_made_elsewhere(cpu_with, tiny, tmp_path):
    cpu_with(AVX512_BF16)
    fit(_config(epochs=1), dataset=tiny, run_dir=tmp_path / "a", progress=False, log=_quiet())
    fit(_config(epochs=1, seed=1), dataset=tiny, run_dir=tmp_path / "b", progress=False, log=_quiet())
    assert reuse.precision_census([tmp_path / "a", tmp_path / "b"], CPU) is None  # all made here
    cpu_with(AVX2_ONLY)
    fit(_config(epochs=1, seed=2), dataset=tiny, run_dir=tmp_path / "c", progress=False, log=_quiet())
    line = reuse.precision_census([tmp_path / "a", tmp_path / "b", tmp_path / "c"], CPU)
    assert line == (
        f'2 of the 3 run records were made at another precision than this machine\'s ("auto" is fp32 here) '
        f"and are reused as they are: 2 in bf16 on {cpu.cpu_model()} (ISA class avx512_bf16); "
        f"--retrain trains them again here"
    )
    assert reuse.folder_made_elsewhere(tmp_path / "a", CPU) == (
        f"made in bf16 on {cpu.cpu_model()} (ISA class avx512_bf16)"
    )
    assert reuse.folder_made_elsewhere(tmp_path / "c", CPU) is None


def test_a_bf16_run_is_evaluated_again_in_fp32_only_where_bf16_is_emulated(cpu_with):
    from cifar_utils.core.evaluation import replay_precision

    cpu_with(AVX2_ONLY)
    assert replay_precision("bf16", CPU) is None and replay_precision("fp16", CPU) is torch.float16
    cpu_with(AVX512_BF16)
    assert replay_precision("bf16", CPU) is torch.bfloat16 and replay_precision("fp32", CPU) is None


def test_evaluating_a_run_reproduces_its_own_scores_at_whatever_auto_means(tiny, synthetic_root, tmp_path, capsys):
    """No faked CPU: on this machine (or under $CIFAR_PRECISION) the run records what auto meant, and a
    later evaluation computes at that precision, so it gives the run's own test scores to the last bit."""
    from cifar_utils.cli import main

    result = fit(_config(epochs=1), dataset=tiny, run_dir=tmp_path / "run", progress=False, log=_quiet())
    assert result.config.precision == precision_name("auto", CPU)
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "run"),
                "--data-root",
                str(synthetic_root),
                "--no-verify",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == result.metrics["test_accuracy"]
    assert evaluated["loss"] == result.metrics["test_loss"]
