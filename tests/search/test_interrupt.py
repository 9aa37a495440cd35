"""Ctrl-C (KeyboardInterrupt in the driver) mid-search: the study is left in order at once
(running trials FAIL and interrupted, charged what they used; the driver finished; the lock
free; the executor stopped, with a second Ctrl-C ignored meanwhile), and the same command
resumes it without losing or double-charging anything."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.cli import Progress, run_command, search_command
from orca_automl.errors import SearchInterrupted
from orca_automl.search import (
    ExecutionPlan,
    Executor,
    Resumed,
    SearchCallback,
    Stage,
    TrialOutcome,
    TrialRecord,
    TrialRunner,
    run_search,
)
from tests.search.fakes import (
    FakeClock,
    FakeRunner,
    SimulatedExecutor,
    args,
    fake_toolkit,
    options,
)


@pytest.fixture(autouse=True)
def ctrl_c_enabled() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here, as in a terminal, even when the test run itself
    was started with SIGINT ignored (a background job: `.ci/run &`, nohup)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c(executor: SimulatedExecutor) -> KeyboardInterrupt:
    """Ctrl-C half a (simulated) second into a wait for trials."""
    executor.clock.sleep(0.5)
    return KeyboardInterrupt()


class _CtrlCInSearch(SimulatedExecutor):
    """Ctrl-C while short trials run, after 4 of them have finished (on the 5th wait)."""

    def wait(self, timeout: float) -> list[TrialOutcome]:
        self.waits = getattr(self, "waits", 0) + 1
        if self.waits > 4:
            raise _ctrl_c(self)
        return super().wait(timeout)


class _CtrlCInPromotion(SimulatedExecutor):
    """Ctrl-C while a promoted trial trains in full."""

    def wait(self, timeout: float) -> list[TrialOutcome]:
        if Stage.FULL in self.stages.values():
            raise _ctrl_c(self)
        return super().wait(timeout)


class _Watcher(SearchCallback):
    """Records the events, and presses Ctrl-C again while the interrupted search cleans up."""

    def __init__(self) -> None:
        self.interrupted = 0
        self.second_ctrl_c_raised = False
        self.ended = False
        self.resumed: Resumed | None = None

    def on_interrupt(self) -> None:
        self.interrupted += 1
        try:  # a second Ctrl-C: must be ignored, not break the cleanup
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            self.second_ctrl_c_raised = True

    def on_resume(self, resumed: Resumed) -> None:
        self.resumed = resumed

    def on_end(self, result: Any) -> None:
        self.ended = True


def _execution(clock: FakeClock, executor_type: type[SimulatedExecutor], exits: list[Any]):  # type: ignore[no-untyped-def]
    """The simulated executor, recording how its context was left (the SIGINT handler then)."""

    @contextmanager
    def execution(plan: ExecutionPlan, runner: TrialRunner, task: Any) -> Iterator[Executor]:
        try:
            yield executor_type(runner, task, clock, plan.device_share)
        finally:
            exits.append(signal.getsignal(signal.SIGINT))

    return execution


def _records(url: str) -> list[TrialRecord]:
    return [TrialRecord.from_frozen(t) for t in optuna.load_study(study_name="fake-1d",
                                                                   storage=url).trials]


@pytest.mark.parametrize("ctrl_c", [_CtrlCInSearch, _CtrlCInPromotion])
def test_ctrl_c_leaves_the_study_in_order_and_the_same_command_resumes_it(
    storage_url: str, ctrl_c: type[SimulatedExecutor]
) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    flags = {"budget": "60s", "workers": 2, "storage": storage_url}
    watcher, exits = _Watcher(), []  # type: ignore[var-annotated]
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SearchInterrupted) as info:
        run_search(options(**flags), watcher, toolkit=fake_toolkit(runner),
                   execution=_execution(clock, ctrl_c, exits))
    assert watcher.interrupted == 1 and not watcher.ended and not watcher.second_ctrl_c_raised
    assert exits == [signal.SIG_IGN]  # the executor stopped while Ctrl-C was ignored ...
    assert signal.getsignal(signal.SIGINT) is handler  # ... and Ctrl-C works again after

    before = {r.number: r for r in _records(storage_url)}
    assert not any(r.state == TrialState.RUNNING for r in before.values())
    stopped = [r for r in before.values() if r.result.interrupted]
    assert stopped and all(r.state == TrialState.FAIL and r.result.device_seconds > 0
                           and r.result.device_seconds_estimated for r in stopped)
    if ctrl_c is _CtrlCInPromotion:
        assert any(r.plan.stage == Stage.FULL for r in stopped)
    study = optuna.load_study(study_name="fake-1d", storage=storage_url)
    spent = sum(r.result.device_seconds for r in before.values())
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(spent)
    assert study.user_attrs["driver"]["finished"] is True
    assert study.user_attrs["sessions"][-1]["finished"] is False  # to be continued
    count = f"{len(stopped)} running trial{'s' if len(stopped) > 1 else ''} marked interrupted"
    assert str(info.value).startswith(count) and "of the 60s budget spent" in str(info.value)

    resumer = _Watcher()
    result = run_search(options(**flags), resumer, toolkit=fake_toolkit(runner),
                        execution=_execution(clock, SimulatedExecutor, []))  # the lock is free
    assert resumer.ended and resumer.resumed is not None
    assert resumer.resumed.spent == pytest.approx(spent)  # nothing charged twice ...
    assert resumer.resumed.interrupted == 0  # ... nor reconciled twice
    short_stopped = [r for r in stopped if r.plan.stage == Stage.SHORT]
    assert resumer.resumed.retries == len(short_stopped)
    after = {r.number: r for r in _records(storage_url)}
    assert [r.number for r in result.records] == sorted(after)
    for n, r in before.items():  # nothing finished is lost or changed
        assert after[n].state == r.state and after[n].val_score == r.val_score
        assert after[n].result.device_seconds == r.result.device_seconds
    for r in short_stopped:  # retried once each, with the same parameters ...
        retries = [a for a in after.values() if a.plan.retry_of == r.number]
        assert len(retries) == 1 and retries[0].params == r.params
    new = sorted(n for n in after if n not in before)  # ... and first
    assert {a.number for a in after.values() if a.plan.retry_of is not None} == set(
        new[:len(short_stopped)])
    study = optuna.load_study(study_name="fake-1d", storage=storage_url)
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(
        sum(r.result.device_seconds for r in after.values()))
    sessions = study.user_attrs["sessions"]
    assert len(sessions) == 1 and sessions[0]["finished"]
    assert sessions[0]["spent"] == pytest.approx(sum(r.result.device_seconds for r in after.values()))
    assert not any(r.state == TrialState.RUNNING for r in after.values())
    assert any(r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE for r in after.values())


def test_ctrl_c_while_the_study_is_made_waits_until_it_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_metric_names = optuna.Study.set_metric_names

    def interrupted(study: optuna.Study, names: list[str]) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between creating the study and its attributes
        set_metric_names(study, names)

    monkeypatch.setattr(optuna.Study, "set_metric_names", interrupted)
    clock = FakeClock()
    runner = FakeRunner(clock)
    url = f"sqlite:///{tmp_path}/study.db"
    try:
        run_search(options(storage=url), toolkit=fake_toolkit(runner),
                   execution=_execution(clock, SimulatedExecutor, []))
    except SearchInterrupted as exc:
        assert str(exc).startswith("0 running trials marked interrupted, 0s of the 60s budget")
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C broke into the making of the study")
    else:
        pytest.fail("Ctrl-C was lost")
    assert not runner.calls
    study = optuna.load_study(study_name="fake-1d", storage=url)
    assert {"task_fingerprint", "search_space", "engine_default_trial"} <= set(study.user_attrs)
    monkeypatch.undo()
    run_search(options(storage=url), toolkit=fake_toolkit(runner),  # resumable as it is
               execution=_execution(clock, SimulatedExecutor, []))
    assert any(r.plan.engine_default and r.state == TrialState.COMPLETE
               for r in _records(url))


def test_ctrl_c_at_the_command_prints_one_line_and_exits_130(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock()
    toolkit = fake_toolkit(FakeRunner(clock))
    parsed = args(storage=f"sqlite:///{tmp_path}/study.db", workers=2)
    code = run_command("orca-search", lambda a: search_command(
        a, toolkit=toolkit, execution=_execution(clock, _CtrlCInSearch, []), out=io.StringIO(),
        progress=Progress(io.StringIO(), out=io.StringIO())), parsed)
    assert code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("orca-search: interrupted: 2 running trials marked interrupted, ")
    assert err.endswith(" of the 60s budget spent; run the same command to resume\n")
