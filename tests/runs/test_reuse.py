"""Trained again or reused, and at which precision (runs/reuse.py): one table for the three kinds of run.

Each kind (a named run, an experiment's run record, a reference run) is made once on one faked CPU and
asked for again on another:

- same:     made and asked where "auto" means fp32                     -> reused as it is;
- auto:     made where "auto" meant bf16, asked where it means fp32    -> reused, labelled with bf16 and the CPU;
- explicit: the same, but asked for fp32 by name                       -> trained again, in fp32;
- retrain:  made and asked where "auto" means fp32, with retrain/rerun -> trained again.

The CPU is faked through its flags (as in test_precision.py). Each kind's run is made once on each CPU and
copied for every case; the runs are a second each on synthetic data.
"""

import shutil
from dataclasses import dataclass

import pytest
import torch

from cifar_utils.analysis import experiments as E
from cifar_utils.core import cpu
from cifar_utils.core.config import TrainConfig
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.evaluation import precision_name
from cifar_utils.runs import reference as REF
from cifar_utils.runs import run_files
from cifar_utils.runs.training import fit_or_reuse

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # "auto" means fp32
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}  # "auto" means bf16
CPU = torch.device("cpu")
TINY = {
    "epochs": 1,
    "batch_size": 50,
    "val_size": 50,
    "train_subset": 100,
    "device": "cpu",
    "model_kwargs": {"widths": [8, 8, 8]},
}


@pytest.fixture(scope="module")
def tiny(synthetic_root):
    return load_cifar10(synthetic_root, download=False, verify=False)


@dataclass
class Outcome:
    reused: bool
    precision: str  # what the run returned (or left in its folder) was computed in
    labelled: bool  # says it was made in bf16 on this CPU, where "auto" means fp32


LABEL = "made in bf16 on {} (ISA class avx512_bf16)"


class NamedRun:
    """notebook 02 and `train`: fit_or_reuse into a run folder named by the user."""

    def __init__(self, tmp_path, tiny, synthetic_root, monkeypatch):
        self.run_dir, self.tiny = tmp_path / "run", tiny

    def ask(self, precision="auto", retrain=False) -> Outcome:
        said = []
        config = TrainConfig(**TINY, precision=precision)
        record = fit_or_reuse(
            config, run_dir=self.run_dir, reuse=not retrain, dataset=self.tiny, progress=False, log=said.append
        )
        labelled = any(LABEL.format(cpu.cpu_model()) in line for line in said)
        return Outcome(record.reused, record.config.precision, labelled)


class ExperimentRecord:
    """notebooks 04, 05 and 07: run records in folders named by their configuration's digest, kept (as a clone
    holds them) without their weights."""

    def __init__(self, tmp_path, tiny, synthetic_root, monkeypatch):
        self.store, self.tiny = tmp_path / "store", tiny

    def ask(self, precision="auto", retrain=False) -> Outcome:
        config = TrainConfig(**TINY, precision=precision)
        row = E.train_runs([config], self.store, self.tiny, rerun=retrain, log=lambda *_: None).iloc[0]
        for checkpoint in self.store.glob(f"*/{run_files.CHECKPOINT}"):
            checkpoint.unlink()  # the records alone, as committed
        here = precision_name("auto", CPU)
        labelled = row["trained_precision"] != here and row["trained_on"] == cpu.cpu_model()  # the rows name both
        return Outcome(bool(row["reused"]), row["trained_precision"], labelled)


class ReferenceRun:
    """The report's reference run: outputs/runs/<name>, defined by REFERENCE_RUNS."""

    def __init__(self, tmp_path, tiny, synthetic_root, monkeypatch):
        self.runs_dir, self.root, self.monkeypatch = tmp_path / "runs", synthetic_root, monkeypatch

    def ask(self, precision="auto", retrain=False) -> Outcome:
        self.monkeypatch.setattr(REF, "REFERENCE_RUNS", {"tiny": ("seed", {**TINY, "precision": precision})})
        checkpoint = self.runs_dir / "tiny" / run_files.CHECKPOINT
        before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        said = []
        REF.ensure_reference_runs(self.runs_dir, data_root=self.root, reuse=not retrain, log=said.append)
        reused = any(line.startswith("reusing") for line in said)
        assert reused == (checkpoint.stat().st_mtime_ns == before)  # what it says is what it did
        labelled = any(LABEL.format(cpu.cpu_model()) in line for line in said)
        return Outcome(reused, run_files.load_checkpoint(checkpoint)["config"]["precision"], labelled)


KINDS = {"named run": NamedRun, "experiment record": ExperimentRecord, "reference run": ReferenceRun}
# case: (CPU the run is made on, CPU it is asked for again on, precision asked, retrain, what becomes of it)
CASES = {
    "same": (AVX2_ONLY, AVX2_ONLY, "auto", False, Outcome(reused=True, precision="fp32", labelled=False)),
    "auto": (AVX512_BF16, AVX2_ONLY, "auto", False, Outcome(reused=True, precision="bf16", labelled=True)),
    "explicit": (AVX512_BF16, AVX2_ONLY, "fp32", False, Outcome(reused=False, precision="fp32", labelled=False)),
    "retrain": (AVX2_ONLY, AVX2_ONLY, "auto", True, Outcome(reused=False, precision="fp32", labelled=False)),
}


def _fake_cpu(monkeypatch, flags) -> None:
    """Pretend this machine's CPU has `flags`, with nothing in the environment deciding what "auto" means."""
    for name in (cpu.PRECISION_ENV, "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny, synthetic_root):
    """Each kind's run made once on each CPU, {(kind, CPU flags): its folder}; a case works on a copy."""
    folders = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for kind, cls in KINDS.items():
            for flags in (AVX2_ONLY, AVX512_BF16):
                folder = tmp_path_factory.mktemp("made")
                _fake_cpu(monkeypatch, flags)
                outcome = cls(folder, tiny, synthetic_root, monkeypatch).ask()
                assert not outcome.reused and outcome.precision == precision_name("auto", CPU)
                folders[kind, flags] = folder
    return folders


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_run_is_reused_or_trained_again_by_the_same_rules_whatever_its_kind(
    kind, case, made, tiny, synthetic_root, tmp_path, monkeypatch
):
    made_on, asked_on, precision, retrain, expected = CASES[case]
    shutil.copytree(made[kind, made_on], tmp_path, dirs_exist_ok=True)  # modification times too
    _fake_cpu(monkeypatch, asked_on)
    assert KINDS[kind](tmp_path, tiny, synthetic_root, monkeypatch).ask(precision, retrain) == expected
