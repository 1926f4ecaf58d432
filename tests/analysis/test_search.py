"""The Optuna search: workers in separate processes on one study (a journal file, and PostgreSQL when
CIFAR_TEST_POSTGRES_URL names one: `.ci/run` starts it with .ci/postgres.sh), a worker killed mid-trial,
and the rule that no number that chooses anything comes from the test set.

Trials are tiny (the synthetic dataset, a narrow fast net, 100 training images in batches of 50, two
epochs), so that a trial takes a second or two; the victim worker is stopped at a known optimizer
step with CIFAR_PAUSE_AT (see training._wait_for_a_signal) and killed there.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cifar_utils.analysis import experiments as E
from cifar_utils.analysis import search as S
from cifar_utils.analysis import search_storage
from cifar_utils.cli import build_parser, main
from cifar_utils.core.data import load_cifar10
from cifar_utils.runs.training import PAUSE_ENV, fit

REPO = Path(__file__).resolve().parents[2]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
POSTGRES_ENV = "CIFAR_TEST_POSTGRES_URL"
HEARTBEAT, GRACE = 1, 3  # seconds: a dead worker's trial is stale within seconds (databases)


def tiny_search(trials: int) -> dict:
    base = S.search_base_config(
        epochs=2, val_size=100, train_subset=100, model_kwargs={"widths": [8, 16, 16]}, device="cpu", precision="fp32"
    )
    return dict(base=base, space=S.SearchSpace(batch_size=(50,)), trials=trials)  # 2 optimizer steps an epoch


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py)."""


@pytest.fixture(params=["journal", "postgres"])
def storage(request, tmp_path):
    """A storage URL: a journal file in a temporary folder, or the CI's PostgreSQL database."""
    if request.param == "journal":
        yield str(tmp_path / "search_storage.journal")
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL to test against: {POSTGRES_ENV} is unset (.ci/run sets it with .ci/postgres.sh)")
    yield url


@pytest.fixture
def study_name(storage):
    name = f"test-{uuid.uuid4().hex[:10]}"  # the database outlives the test: a name of its own
    yield name
    try:
        optuna.delete_study(study_name=name, storage=search_storage.open_storage(storage))
    except KeyError:
        pass


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return load_cifar10(synthetic_root, verify=False, download=False)


def _worker(root, name, storage, *extra, pause_at: Path | None = None, grace: int = GRACE) -> subprocess.Popen:
    bootstrap = "import sys; from cifar_utils.cli import main; sys.exit(main())"
    cmd = [
        sys.executable,
        "-c",
        bootstrap,
        "worker",
        "--study",
        name,
        "--storage",
        storage,
        "--data-root",
        str(root),
        "--no-verify",
        "--heartbeat",
        str(HEARTBEAT),
        "--grace",
        str(grace),
        *map(str, extra),
    ]
    env = dict(ONE_THREAD, **({PAUSE_ENV: f"1:1:{pause_at}"} if pause_at else {}))
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen, seconds: float = 240) -> str:
    out, err = proc.communicate(timeout=seconds)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{out}\n{err}"
    return out


def _wait_for_pause(proc: subprocess.Popen, marker: Path, seconds: float = 240) -> None:
    """Until the worker stands still after optimizer step 1 of epoch 1 (it touches `marker` there)."""
    deadline = time.monotonic() + seconds
    while not marker.exists():
        assert proc.poll() is None, f"the worker ended before its pause: {proc.communicate()}"
        assert time.monotonic() < deadline, "the worker never reached its pause"
        time.sleep(0.1)


def _trials_run_by(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"^trial (\d+)(?: \(retry of \d+\))?: (?!its worker)", output, re.M)]


def _load(name, storage) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=search_storage.open_storage(storage))


@pytest.mark.slow
def test_two_workers_on_one_study_run_every_trial_exactly_once(synthetic_root, storage, study_name):
    S.create_search(study_name, storage, **tiny_search(trials=6))
    # A grace period no stall of this loaded machine reaches: here no worker dies, so none may be judged dead.
    first, second = (_worker(synthetic_root, study_name, storage, "--trials", 3, grace=120) for _ in range(2))
    outputs = {first.pid: _finish(first), second.pid: _finish(second)}

    ran = {pid: _trials_run_by(out) for pid, out in outputs.items()}
    assert [len(r) for r in ran.values()] == [3, 3], outputs
    assert not set(ran[first.pid]) & set(ran[second.pid]), f"a trial ran in both workers: {ran}"
    study = _load(study_name, storage)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == sorted(ran[first.pid] + ran[second.pid]) == list(range(6))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for t in trials:  # the worker that printed a trial is the one the trial records
        assert t.number in ran[t.user_attrs[search_storage.OWNER_ATTR]["pid"]]
    table = S.trials_table(study)
    assert len(table) == 6 and table["retry_of"].isna().all()
    assert table.loc[table["state"] == "COMPLETE", "value"].between(0, 1).all()


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_a_failed_trial_retried_once(synthetic_root, storage, study_name, tmp_path):
    S.create_search(study_name, storage, **tiny_search(trials=3))
    marker = tmp_path / "paused"
    victim = _worker(synthetic_root, study_name, storage, "--trials", 1, pause_at=marker)
    _wait_for_pause(victim, marker)
    (running,) = _load(study_name, storage).get_trials(states=(TrialState.RUNNING,))
    assert running.user_attrs[search_storage.OWNER_ATTR]["pid"] == victim.pid
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    if search_storage.is_database(storage):
        time.sleep(GRACE + HEARTBEAT)  # the heartbeat's verdict needs the grace period to pass since the last beat

    survivor = _worker(synthetic_root, study_name, storage)
    out = _finish(survivor)
    assert f"trial {running.number}: its worker is gone; marked failed and queued again" in out

    study = _load(study_name, storage)
    table = S.trials_table(study)
    assert table.loc[running.number, "state"] == "FAIL"
    retries = table[table["retry_of"] == running.number]
    assert len(retries) == 1, table
    retry = study.get_trials()[retries.index[0]]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED) and retry.params == running.params
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])]
    assert len(finished) == 3 and (table["state"] != "RUNNING").all()  # the killed trial is not counted, none lost
    assert sorted(_trials_run_by(out)) == sorted(finished.index)

    assert search_storage.fail_stale_trials(_load(study_name, storage)) == []  # nothing left to recover...
    again = _finish(_worker(synthetic_root, study_name, storage))
    assert _trials_run_by(again) == [] and "finished 0 trials" in again  # ...and a finished study runs nothing more
    assert len(S.trials_table(_load(study_name, storage))) == len(table)


@pytest.mark.slow
def test_a_live_worker_judged_dead_drops_its_result_and_goes_on(synthetic_root, tmp_path):
    """A stall past the grace period gets a live trial failed by another worker: its late result must not count."""
    journal, marker = str(tmp_path / "j.journal"), tmp_path / "paused"
    S.create_search("judged", journal, **tiny_search(trials=2))
    worker = _worker(synthetic_root, "judged", journal, "--trials", 1, pause_at=marker)
    _wait_for_pause(worker, marker)
    _load("judged", journal).tell(0, state=TrialState.FAIL)  # another worker's verdict on trial 0
    marker.unlink()  # the worker goes on, and finds its trial already failed...
    _wait_for_pause(worker, marker)  # ...then stands at the same point of its next trial
    marker.unlink()
    out = _finish(worker)
    assert "trial 0 was marked failed by another worker while it ran here" in out
    trials = _load("judged", journal).get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].value is None
    assert [t.number for t in trials[1:]] == [1] and trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)


class SealedTestSplit:
    """A dataset whose test split cannot be read: touching it fails the search."""

    def __init__(self, dataset):
        self.train_images, self.train_labels = dataset.train_images, dataset.train_labels
        self.root, self.classes = dataset.root, dataset.classes

    @property
    def test_images(self):
        raise AssertionError("the search read the test images")

    test_labels = test_images


def test_the_search_never_reads_the_test_set(dataset, tmp_path):
    sealed = SealedTestSplit(dataset)
    with pytest.raises(AssertionError, match="read the test images"):  # the seal holds where the test set is used
        fit(tiny_search(1)["base"], dataset=sealed, progress=False, log=lambda *_: None)

    table = S.run_search("sealed", str(tmp_path / "s.journal"), dataset=sealed, log=lambda *_: None, **tiny_search(4))
    assert len(table) == 4 and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    study = _load("sealed", str(tmp_path / "s.journal"))
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert t.value == t.user_attrs["metrics"]["val_accuracy"]  # the score is the validation accuracy
        assert not any("test" in key for key in t.user_attrs["metrics"])
    _, search = S.load_search("sealed", str(tmp_path / "s.journal"))
    best = S.best_configs(study, search, k=2)
    assert best[0].lr == study.best_trial.params["lr"] and best[0].val_size == 100


def test_the_epoch_hook_sees_every_epoch_and_changes_nothing(dataset):
    config = tiny_search(1)["base"]
    seen = []
    plain = fit(config, dataset=dataset, evaluate_test=False, progress=False, log=lambda *_: None)
    hooked = fit(
        config, dataset=dataset, evaluate_test=False, progress=False, log=lambda *_: None, on_epoch=seen.append
    )
    assert [row["epoch"] for row in seen] == [1, 2]
    strip = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
    assert strip(hooked.history) == strip(plain.history) == strip(seen)
    assert hooked.metrics["val_accuracy"] == plain.metrics["val_accuracy"]


def test_a_pruned_trial_stops_training_at_the_epoch_it_was_judged(dataset, tmp_path):
    journal = str(tmp_path / "p.journal")
    table = S.run_search("pruned", journal, dataset=dataset, log=lambda *_: None, seed=3, **tiny_search(8))
    pruned = table[table["state"] == "PRUNED"]
    assert len(pruned) > 0 and (pruned["last_epoch"] == 1).all()
    for number in pruned.index:  # epoch 1 was reported and nothing after it
        assert list(_load("pruned", journal).get_trials()[number].intermediate_values) == [1]


def test_a_study_of_the_same_name_with_other_settings_is_refused(tmp_path):
    journal = str(tmp_path / "c.journal")
    S.create_search("s", journal, **tiny_search(3))
    S.create_search("s", journal, **tiny_search(3))  # the same search again: opened, not refused
    with pytest.raises(S.ConfigError, match="already exists with other settings"):
        S.create_search("s", journal, **tiny_search(4))
    with pytest.raises(S.ConfigError, match="val_size 0"):
        S.create_search("t", journal, base=S.search_base_config(val_size=0))


def test_opening_an_existing_study_leaves_its_journal_unchanged(tmp_path):
    """A report that reuses a finished study must not dirty the committed journal (it once appended a create)."""
    journal = tmp_path / "d.journal"
    S.create_search("s", str(journal), **tiny_search(3))
    before = journal.read_bytes()
    S.create_search("s", str(journal), **tiny_search(3))
    assert journal.read_bytes() == before


def test_the_worker_cli_says_what_is_wrong_in_one_line(tmp_path, synthetic_root, capsys):
    assert (
        main(
            [
                "worker",
                "--study",
                "nope",
                "--storage",
                str(tmp_path / "x.journal"),
                "--data-root",
                str(synthetic_root),
                "--no-verify",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().startswith("error: there is no study 'nope'")
    assert main(["worker", "--study", "s", "--storage", "postgresql://me:hunter2@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the study storage postgresql://me:***@127.0.0.1:1/db")
    assert "hunter2" not in err and err.count("\n") == 1


def _worker_command(output: str) -> list[str]:
    (line,) = [line.strip() for line in output.splitlines() if line.strip().startswith("python -m cifar_utils worker")]
    return shlex.split(line)


def test_search_create_makes_the_notebooks_study_without_trials_and_prints_the_worker_command(
    storage, study_name, capsys
):
    assert main(["search", "create", "--study", study_name, "--storage", storage]) == 0
    out = capsys.readouterr().out
    study = _load(study_name, storage)
    notebook = S.notebook_search(E.budget(), None)  # what notebook 05 runs with its parameters left at None
    assert notebook.trials == E.SEARCH["trials"] == 12 and notebook.base == E.base_config(E.budget(), seed=0)
    assert study.user_attrs[S.SETTINGS_ATTR] == notebook.to_dict()
    assert study.get_trials() == []  # created, nothing run
    command = _worker_command(out)
    assert command[:3] == ["python", "-m", "cifar_utils"]
    args = build_parser().parse_args(command[3:])
    assert (args.command, args.study, args.storage) == ("worker", study_name, search_storage.describe(storage))
    _, search = S.load_search(args.study, storage)  # what that worker would run
    assert search == S.Search.from_dict(notebook.to_dict())


def test_search_create_names_the_study_as_the_notebook_does_and_agrees_with_create_search(tmp_path, capsys):
    journal = tmp_path / "studies.journal"
    assert main(["search", "create", "--storage", str(journal)]) == 0
    planned = S.notebook_search()
    name = S.default_name(planned.base, planned.space, planned.trials)
    assert f"--study {name} --storage {journal}" in capsys.readouterr().out
    assert S.create_search(name, str(journal)).user_attrs[S.SETTINGS_ATTR] == planned.to_dict()  # its defaults
    assert S.default_name(planned.base) == name
    # Smoke mode and the notebook's other parameters, as the notebook resolves them.
    assert main(["search", "create", "--storage", str(journal), "--smoke", "--epochs", "2", "--trials", "3"]) == 0
    smoke = S.notebook_search(E.budget(smoke=True, epochs=2), 3)
    assert smoke.space.batch_size == (100, 200) and smoke.base.epochs == 2
    smoke_name = S.default_name(smoke.base, smoke.space, 3)
    assert _worker_command(capsys.readouterr().out)[5] == smoke_name
    assert _load(smoke_name, str(journal)).user_attrs[S.SETTINGS_ATTR] == smoke.to_dict()
    # The notebook takes its search from the same function (no copy of the settings to drift from).
    source = (REPO / "notebooks" / "05_hyperparameter_search.py").read_text()
    assert re.search(r"\bnotebook_search\(budget, n_trials\)", source) and "SearchSpace(" not in source


def test_search_create_refuses_a_study_of_that_name_with_other_settings_in_one_line(tmp_path, capsys):
    journal = str(tmp_path / "c.journal")
    assert main(["search", "create", "--storage", journal, "--study", "s", "--trials", "3"]) == 0
    capsys.readouterr()
    assert main(["search", "create", "--storage", journal, "--study", "s", "--trials", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the study 's' in") and "already exists with other settings" in err
    assert err.count("\n") == 1


def test_waiting_for_workers_ends_when_their_trials_do_or_leaves_them_behind_after_the_timeout(tmp_path):
    journal = str(tmp_path / "w.journal")
    study = S.create_search("w", journal, **tiny_search(3))
    study.tell(study.ask(), 0.5)
    running = study.ask()  # another worker's trial, still running (it names no worker, so no sweep ends it)
    lines, start = [], time.monotonic()
    assert S.wait_for_workers(study, timeout=0.3, poll=0.05, log=lines.append) == [running.number]
    assert 0.3 <= time.monotonic() - start < 10
    assert lines == [
        f"proceeding without 1 still running ({running.number}) of study 'w' after waiting 0.3 s for the other "
        f"workers; their results are not in what follows (run this again later to include them)"
    ]
    # The other worker finishes its trial during the wait (through its own storage): the wait ends then.
    finish = threading.Timer(0.5, lambda: _load("w", journal).tell(running.number, 0.6))
    finish.start()
    lines, start = [], time.monotonic()
    try:
        assert S.wait_for_workers(study, timeout=60, poll=0.05, log=lines.append) == []
    finally:
        finish.join()
    assert time.monotonic() - start < 30
    assert lines == [
        "all 2 trials of study 'w' have finished (2 complete or pruned, 0 failed); none is running on another worker"
    ]
    with pytest.raises(S.ConfigError, match="timeout >= 0"):
        S.wait_for_workers(study, timeout=-1)


def test_waiting_for_workers_ends_a_dead_workers_trial_instead_of_waiting_for_it(tmp_path):
    journal = str(tmp_path / "d.journal")
    study = S.create_search("d", journal, **tiny_search(3))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = search_storage.owner(gone.pid)
    gone.wait()
    trial = study.ask()
    trial.set_user_attr(search_storage.OWNER_ATTR, dead)
    lines = []
    left = S.wait_for_workers(study, timeout=0.2, poll=0.05, log=lines.append)
    assert study.get_trials()[trial.number].state == TrialState.FAIL
    (retry,) = study.get_trials(states=(TrialState.WAITING,))  # queued again for a live worker, as a worker does
    assert left == [retry.number]
    assert lines[0] == f"trial {trial.number}: its worker is gone; marked failed and queued again"
    assert lines[1].startswith(f"proceeding without 1 queued ({retry.number}) of study 'd' after waiting 0.2 s")


def test_owner_records_tell_a_dead_worker_from_a_live_one():
    assert search_storage.owner_alive(search_storage.owner()) is True
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    record = search_storage.owner(
        gone.pid
    )  # taken before it is reaped: running, or a zombie that still has its start time
    gone.wait()
    assert search_storage.owner_alive(record) is False
    assert (
        search_storage.owner_alive({**search_storage.owner(), "host": "elsewhere"}) is None
    )  # another machine: cannot tell


def test_the_trials_table_reads_best_first_with_no_nan_or_none_and_small_decays_kept():
    import math

    import pandas as pd

    from cifar_utils.analysis.search import format_trials

    table = pd.DataFrame(
        {
            "state": ["PRUNED", "COMPLETE", "COMPLETE"],
            "value": [math.nan, 0.8056, 0.8123],
            "lr": [0.0731, 0.711, 0.275],
            "weight_decay": [1.2e-6, 7.0e-5, 1.73e-5],
            "batch_size": [2000.0, math.nan, 500.0],
            "label_smoothing": [0.294, 0.278, None],
            "retry_of": [None, None, 1],
            "last_epoch": [1, 2, 2],
            "last_value": [0.2066, 0.8056, 0.8123],
            "worker": [None, None, None],
            "seconds": [35.2, 34.0, 39.4],
        },
        index=pd.Index([3, 2, 1], name="number"),
    )
    shown = format_trials(table)
    assert shown.index.tolist() == [1, 2, 3]  # best first, the pruned trial last
    text = shown.to_string()
    assert "NaN" not in text and "None" not in text and "nan" not in text
    assert shown.loc[3, "weight decay"] == "1.2e-06" and shown.loc[1, "weight decay"] == "1.73e-05"
    assert shown.loc[3, "batch size"] == "2000" and shown.loc[2, "batch size"] == "-"
    assert shown.loc[3, "val accuracy %"] == "-" and shown.loc[1, "val accuracy %"] == "81.23"
