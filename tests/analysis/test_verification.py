"""`python -m cifar_utils verify`: a sample of the run records trained again here and judged, on a tiny store of
records made here from the synthetic dataset (one epoch on 100 images: a second a run)."""

import json
import math
import re

import pytest

from cifar_utils.analysis import experiments as E
from cifar_utils.analysis import verification as V
from cifar_utils.cli import main
from cifar_utils.core.data import load_cifar10
from cifar_utils.errors import CifarError
from cifar_utils.runs import run_files


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread: the records and their reproductions are made alike, and share the 2 cores."""


@pytest.fixture
def store(synthetic_root, tmp_path):
    """Two seeds of one tiny configuration, trained here: records as committed (no weights)."""
    budget = E.budget(smoke=True, train_subset=100, val_size=100, device="cpu", precision="fp32")
    data = load_cifar10(synthetic_root, verify=False, download=False)
    store = tmp_path / "runs"
    E.train_runs([E.base_config(budget, seed=s) for s in (1, 2)], store, data, log=lambda *_: None)
    for weights in store.glob(f"*/{run_files.CHECKPOINT}"):
        weights.unlink()
    return store


def _verify(store, root, capsys, *extra):
    code = main(["verify", "--sample", "1", "--seed", "0", "--store", str(store), "--data-root", str(root),
                 "--no-verify", *extra])  # fmt: skip
    return code, capsys.readouterr().out


def test_a_record_reproduced_on_this_machine_is_identical_and_a_tampered_one_is_not(store, synthetic_root, capsys):
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    code, out = _verify(store, synthetic_root, capsys)
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("run ")]
    run = line.split()[1]
    assert (store / run).is_dir() and line.endswith(": identical")
    recorded = run_files.read_json(store / run / run_files.METRICS)["val_accuracy"]
    assert f"recorded {100 * recorded:.2f}% validation accuracy on " in line and "ISA class" in line and "fp32" in line
    assert "seed-to-seed SD" in out and out.strip().endswith("1 of 1 sampled runs agree with their records")
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before  # the records were only read

    metrics = run_files.read_json(store / run / run_files.METRICS)
    (store / run / run_files.METRICS).write_text(json.dumps({**metrics, "val_accuracy": recorded + 0.01}))
    code, out = _verify(store, synthetic_root, capsys)
    assert code == 1, out
    assert f"run {run} " in out and "differs: expected identical on the same ISA class and precision" in out
    assert out.strip().endswith(f"0 of 1 sampled runs agree with their records; not: {run}")


def _record(seed: int, accuracy: float, **config) -> V.Record:
    base = E.base_config(E.budget(smoke=True, device="cpu", precision="fp32"), seed=seed, **config)
    return V.Record(None, base, [], {"val_accuracy": accuracy}, {})


def test_the_seed_to_seed_spread_pools_configurations_that_differ_only_by_seed():
    records = [_record(1, 0.80), _record(2, 0.82), _record(3, 0.84), _record(1, 0.70, lr=0.1), _record(2, 0.71, lr=0.1)]
    records.append(_record(1, 0.5, lr=0.2))  # one seed: no spread of its own
    spread = V.seed_spread(records)
    # within-group sums of squares 0.0008 and 0.00005, over 2 + 1 degrees of freedom
    assert (spread.configurations, spread.runs) == (2, 5)
    assert math.isclose(spread.sd, math.sqrt((0.0008 + 0.00005) / 3))
    assert V.seed_spread([_record(1, 0.8), _record(1, 0.7, lr=0.1)]) is None


def test_a_reproduction_on_another_kind_of_machine_is_judged_against_the_spread():
    record = V.Record(None, _record(1, 0.80).config, [{"epoch": 1, "val_acc": 0.8}], {"val_accuracy": 0.80}, {})
    avx2 = V.Machine("cpu", "AMD EPYC", "avx2", "fp32")
    amx = V.Machine("cpu", "Intel Xeon", "amx", "fp32")
    spread = V.Spread(0.002, 3, 9)  # 0.2 points: within 0.6 points agrees
    history = [{"epoch": 1, "val_acc": 0.805}]
    verdict, agrees = V.judge(record, {"val_accuracy": 0.805}, history, avx2, amx, spread)
    assert agrees and verdict.startswith("within the seed-to-seed spread (|difference| 0.50 <= 3 x 0.20 points")
    verdict, agrees = V.judge(record, {"val_accuracy": 0.81}, history, avx2, amx, spread)
    assert not agrees and verdict.startswith("outside the seed-to-seed spread (|difference| 1.00 > 3 x 0.20")
    verdict, agrees = V.judge(record, {"val_accuracy": 0.805}, history, avx2, amx, None)
    assert not agrees and verdict.startswith("cannot judge")
    # The same ISA class at another precision is another kind of machine too; at the same one it must be identical.
    assert not avx2.same_kind(V.Machine("cpu", "AMD EPYC", "avx2", "bf16")) and avx2.same_kind(
        V.Machine("cpu", "Intel Core", "avx2", "fp32")
    )
    verdict, agrees = V.judge(record, {"val_accuracy": 0.805}, history, avx2, avx2, spread)
    assert not agrees and re.match(r"differs: expected identical .*\(not the same val_accuracy\)", verdict)
    assert V.Machine("cpu", "AMD EPYC", None, "fp32").same_kind(avx2) is False  # an unrecorded ISA proves nothing


def test_verify_says_what_is_wrong_in_one_line(store, synthetic_root, tmp_path, capsys):
    code = main(["verify", "--sample", "3", "--store", str(store), "--data-root", str(synthetic_root), "--no-verify"])
    assert code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: the store holds 2 finished run records; ask for at most that many")
        and err.count("\n") == 1
    )
    assert main(["verify", "--sample", "1", "--store", str(tmp_path / "none")]) == 2
    assert "is not a folder of run records" in capsys.readouterr().err
    with pytest.raises(CifarError, match="holds no finished run record"):
        V.verify(tmp_path, 1, 0)
