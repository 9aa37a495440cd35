"""One driver per study, on SQLite and PostgreSQL: a second driver is refused with one line
naming the live one, a killed driver's lock is free at once, and a PostgreSQL restart in the
middle of a search costs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.errors import OrcaInputError
from orca_automl.search import TrialRecord, run_search, study_folder
from orca_automl.search._driver_lock import AdvisoryLock, driver_lock
from orca_automl.search._executor import ExecutionPlan, Executor
from orca_automl.search._resume import beat
from orca_automl.search._runner import TrialRunner
from orca_automl.search._storage import StudyHandle
from tests.search.fakes import (
    SPACES,
    FakeClock,
    FakeRunner,
    fake_toolkit,
    options,
    simulated_execution,
)

ROOT = Path(__file__).resolve().parents[2]


def _records(url: str) -> list[TrialRecord]:
    return [TrialRecord.from_frozen(t)
            for t in optuna.load_study(study_name="fake-1d", storage=url).trials]


def _search(url: str, budget: str = "40s") -> None:
    clock = FakeClock()
    run_search(options(storage=url, budget=budget), toolkit=fake_toolkit(FakeRunner(clock)),
               execution=simulated_execution(clock))


def test_a_second_driver_is_refused_while_the_first_holds_the_study(storage_url: str) -> None:
    _search(storage_url)
    before = _records(storage_url)
    attrs = optuna.load_study(study_name="fake-1d", storage=storage_url).user_attrs
    with driver_lock(storage_url, "fake-1d", study_folder(storage_url, "fake-1d")):
        handle = StudyHandle.open(storage_url, "fake-1d", optuna.samplers.RandomSampler(0), {})
        beat(handle, time.time())  # what the live driver records as it starts
        attrs = handle.attrs
        with pytest.raises(OrcaInputError, match=rf"'fake-1d' is being run by orca-search "
                                                 rf"\(pid {os.getpid()} on .*, heartbeat \d+s ago\)"):
            _search(storage_url)
    assert [(r.number, r.state) for r in _records(storage_url)] == [
        (r.number, r.state) for r in before]  # the refused driver changed nothing
    assert optuna.load_study(study_name="fake-1d", storage=storage_url).user_attrs == attrs
    _search(storage_url)  # once the first one is gone, the study resumes
    assert len(_records(storage_url)) > len(before)


def test_a_session_refused_under_the_lock_leaves_nothing_behind(tmp_path: Path) -> None:
    @contextmanager
    def refused(plan: ExecutionPlan, runner: TrialRunner, task: Any) -> Iterator[Executor]:
        raise OrcaInputError("the Ray cluster refused this driver")
        yield  # a generator, like every execution

    with pytest.raises(OrcaInputError, match="refused this driver"):
        run_search(options(storage=f"sqlite:///{tmp_path}/studies/s.db"), toolkit=fake_toolkit(),
                   execution=refused)
    assert not any(tmp_path.iterdir())


def _command(url: str, budget: str) -> list[str]:
    return [sys.executable, "-m", "tests.search.fake_cli", "--task", "fake-1d", "--budget", budget,
            "--workers", "1", "--storage", url, "--search-space", str(SPACES / "tiny.yaml"),
            "--validation", "holdout", "--no-baselines"]


@pytest.mark.integration
def test_two_drivers_started_together_one_runs_one_is_refused(tmp_path: Path, storage_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen(_command(storage_url, "6s"), cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [run.communicate(timeout=240) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], outputs
    refused = next(err for run, (_, err) in zip(runs, outputs, strict=True) if run.returncode == 2)
    winner = next(run for run in runs if run.returncode == 0)
    assert len(refused.strip().splitlines()) == 1, refused
    assert "'fake-1d' is being run by" in refused
    if "starting" not in refused:  # the live driver had already recorded its heartbeat
        assert f"pid {winner.pid} " in refused
    records = _records(storage_url)
    assert records and not any(r.state == TrialState.RUNNING for r in records)
    assert [s["finished"] for s in optuna.load_study(
        study_name="fake-1d", storage=storage_url).user_attrs["sessions"]] == [True]


def _restart_postgres() -> None:
    """Restart the test server (the one `scripts/postgres.sh` started)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "restart"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"cannot restart the test server: {done.stderr}"


def test_the_advisory_lock_is_taken_again_after_a_server_restart(postgres_url: str) -> None:
    lock = AdvisoryLock(postgres_url, "fake-1d")
    other = AdvisoryLock(postgres_url, "fake-1d")
    try:
        assert lock.acquire() and not other.acquire()
        _restart_postgres()  # the lock went with the server's connections
        lock.check()  # ... and this driver took it back
        assert not other.acquire()
    finally:
        lock.release()
        other.release()
    assert other.acquire()  # released for good
    other.release()


def _count(url: str, *states: TrialState) -> int:
    try:
        return sum(r.state in states for r in _records(url))
    except KeyError:  # no study yet
        return 0


@pytest.mark.integration
def test_a_server_restart_mid_search_loses_nothing(tmp_path: Path, postgres_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = _command(postgres_url, "10s")
    first = subprocess.Popen(command, cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(postgres_url, TrialState.COMPLETE, TrialState.PRUNED) < 2:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the search never got going"
        time.sleep(0.3)
    finished = {r.number: r for r in _records(postgres_url) if r.finished}
    _restart_postgres()
    _, err = first.communicate(timeout=240)
    if first.returncode != 0:  # it did not ride through: one line saying how to resume, then resume
        assert first.returncode == 1 and len(err.strip().splitlines()) == 1, err
        assert "run the same command again to resume" in err
        again = subprocess.run(command, cwd=tmp_path, env=env, text=True, capture_output=True,
                               timeout=240)
        assert again.returncode == 0, again.stderr
    after = {r.number: r for r in _records(postgres_url)}
    for number, record in finished.items():  # nothing lost or changed
        assert after[number].state == record.state and after[number].values == record.values
    assert not any(r.state == TrialState.RUNNING for r in after.values())
    assert [s["finished"] for s in optuna.load_study(
        study_name="fake-1d", storage=postgres_url).user_attrs["sessions"]] == [True]
    assert any((tmp_path / study_folder(postgres_url, "fake-1d") / "winners").iterdir())
