"""Real Ray, real subprocesses: two workers in parallel, and SIGKILL in the middle of a run.

Trials use the fake runner sleeping for real (about a second each), so these tests check the
execution and recovery machinery, not model training.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from orca_automl.search import Stage, TrialRecord, run_search, study_folder
from tests.search.fakes import SPACES, FakeRunner, fake_toolkit, options
from tests.tiny_bert import search_space

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _records(url: str, name: str = "fake-1d") -> list[TrialRecord]:
    study = optuna.load_study(study_name=name, storage=url)
    return [TrialRecord.from_frozen(t) for t in study.trials]


def test_a_tiny_search_through_ray_with_two_workers(storage_url: str) -> None:
    runner = FakeRunner(real_sleep=0.3)
    result = run_search(options(budget="16s", workers=2, storage=storage_url),
                        toolkit=fake_toolkit(runner))
    records = _records(storage_url)
    assert [r.number for r in result.records] == [r.number for r in records]
    assert {r.state for r in records} <= {TrialState.COMPLETE, TrialState.PRUNED}
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert full and all(Path(r.result.model_dir or "").is_dir() for r in full)
    spent = sum(r.result.device_seconds for r in records)
    longest = sorted((r.result.device_seconds for r in records), reverse=True)[:2]
    assert 0 < spent <= 16.0 + sum(longest)
    trials = optuna.load_study(study_name="fake-1d", storage=storage_url).trials
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials
                   if t.datetime_start and t.datetime_complete)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # two ran at once
    assert (study_folder(storage_url, "fake-1d") / "ray").is_dir()  # Ray's files there
    assert result.winners and all(w.result.test is not None for w in result.winners)


def _count(url: str, state: str) -> int:
    """Trials in `state`, read without writing (an SQLite file is opened read-only)."""
    parsed = sqlalchemy.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(database=f"file:{parsed.database}?mode=ro", query={"uri": "true"})
    engine = sqlalchemy.create_engine(parsed, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql(
                f"SELECT COUNT(*) FROM trials WHERE state = '{state}'").scalar() or 0)
    except sqlalchemy.exc.OperationalError:  # not created yet
        return 0
    except sqlalchemy.exc.ProgrammingError:  # PostgreSQL: no trials table yet
        return 0
    finally:
        engine.dispose()


def _orphans_in(folder: Path) -> list[int]:
    """Processes re-parented to init that hold files open under `folder`."""
    found = []
    root = str(folder.resolve()) + os.sep
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == 1 and any(os.readlink(fd).startswith(root) for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)
def test_sigkill_mid_run_then_rerun_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, storage_url: str
) -> None:
    """On SQLite, the default storage. On PostgreSQL the same contract (and more kills: a
    Ray worker, a FULL trial, a winner being saved) is the faults benchmark's smoke run,
    tests/benchmarks/test_faults.py, which uses PostgreSQL wherever a server is given."""
    url = storage_url
    command = [sys.executable, "-m", "tests.search.fake_cli", "--task", "fake-1d", "--budget", "24s",
               "--workers", "2", "--storage", url, "--search-space",
               str(SPACES / "tiny.yaml"), "--validation", "holdout"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _count(url, "COMPLETE") + _count(url, "PRUNED") < 3 or _count(url, "RUNNING") == 0:
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run never got going"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        before = {r.number: r for r in _records(url)}
        interrupted = {n for n, r in before.items() if r.state == TrialState.RUNNING}
        assert interrupted
        (killed_session,) = (study_folder(url, "fake-1d") / "ray").glob("session_2*")
        assert _orphans_in(killed_session)  # Ray helpers outlive their SIGKILLed driver ...

        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=240, start_new_session=True)
        assert second.returncode == 0, second.stderr
        assert not _orphans_in(killed_session)  # ... until the rerun ends them
    finally:  # whatever this test started and is still running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    assert "resumed:" in second.stdout
    after = _records(url)
    by_number = {r.number: r for r in after}
    for n, r in before.items():
        if r.finished:  # no finished trial lost or changed
            assert by_number[n].state == r.state
            assert by_number[n].val_score == r.val_score
            assert by_number[n].result.device_seconds == r.result.device_seconds
    for n in interrupted:
        assert by_number[n].state == TrialState.FAIL and by_number[n].result.interrupted
        if by_number[n].plan.stage == Stage.SHORT:
            assert sum(r.plan.retry_of == n for r in after) == 1
    study = optuna.load_study(study_name="fake-1d", storage=url)
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(sum(r.result.device_seconds for r in after))
    assert [s["finished"] for s in study.user_attrs["sessions"]] == [True]
    assert not any(r.state == TrialState.RUNNING for r in after)
    promoted = [r.plan.promoted_from for r in after if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE]
    assert promoted and len(promoted) == len(set(promoted))


@pytest.mark.parametrize(("validation", "budget"), [("cv:3/2", "100s")])
def test_the_real_cycle_through_ray_on_a_tiny_model(  # type: ignore[no-untyped-def]
    tmp_path: Path, tiny_bert_dir: Path, toy_task, validation: str, budget: str,
    minirocket_compiled: None,
) -> None:
    """CycleRunner end to end: run_cycle per trial (per fold) in Ray workers, a promoted winner
    (a bag of fold models under cross-validation) saved through the tar round trip, tested
    once, and loadable for prediction. The hold-out path runs for real as the `orca-search`
    command in the browser tests' study (tests/report/conftest.py), with the same checks."""
    import dataclasses

    from orca_automl.cycle import SavedEnsemble, load_model
    from orca_automl.search import cycle_toolkit

    space = search_space(tmp_path / "tiny-real.yaml", tiny_bert_dir, metrics=("mmd", "none"))
    task = toy_task()
    toolkit = dataclasses.replace(cycle_toolkit(), load_task=lambda spec, seed: task)
    db = tmp_path / "study.db"
    # One worker: a trial in flight can overrun the short-trial share by one trial only, so the
    # promotion reserve survives a loaded machine (two workers are covered by the fake-runner test).
    result = run_search(options(task="toy", budget=budget, workers=1, storage=f"sqlite:///{db}",
                                search_space=str(space), validation=validation), toolkit=toolkit)
    assert result.decision is not None
    records = _records(f"sqlite:///{db}", "toy-classification")
    assert not any(r.state in (TrialState.FAIL, TrialState.RUNNING) for r in records), [r.result.error for r in records]
    short = [r for r in records if r.plan.stage == Stage.SHORT and r.state == TrialState.COMPLETE]
    assert short and all(r.result.device_seconds > 0 and r.cost and r.cost > 0 for r in short)
    aligned = [r for r in short if r.plan.config and r.plan.config.align.metric != "none"]
    assert all(r.result.align_curve and r.result.final_align_loss is not None for r in aligned)
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert full and all(r.state == TrialState.COMPLETE for r in full)
    (winner,) = [r for r in records if r.number == result.decision.winner]
    assert winner.servable and winner.result.test is not None  # a full run, ensemble or baseline
    baselines = [r for r in records if r.plan.stage == Stage.BASELINE]
    assert {b.plan.baseline for b in baselines} == {"minirocket", "one_nn"}
    assert all(b.state == TrialState.COMPLETE and b.result.test and b.servable for b in baselines)
    # every saved model (the winner, each baseline: a bag of its fold refits under folds)
    # reproduces the test score the search recorded for it
    for served in {winner.number: winner, **{b.number: b for b in baselines}}.values():
        saved = load_model(served.result.model_dir or "")
        predictions = saved.predictions(task.test.X)
        assert served.result.test is not None
        assert task.score(task.test.y, predictions).value == pytest.approx(
            served.result.test.value, abs=1e-6), served.plan.stage
        if validation != "holdout" and served.plan.stage in (Stage.FULL, Stage.BASELINE):
            assert isinstance(saved, SavedEnsemble)
            assert len(saved.members) == len(served.result.fold_vals) >= 2
    if validation == "holdout":
        return
    assert all(len(r.result.fold_vals) == 2 for r in short)
    # The first promoted bag is whole; a later one gets the folds the budget left (two at least).
    assert len(min(full, key=lambda r: r.number).result.fold_vals) == 3
