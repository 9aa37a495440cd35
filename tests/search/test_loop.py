"""The driver against the fake runner on a fake clock: budget, pruning, promotion, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.search import (
    PruneKind,
    SearchFailed,
    Stage,
    TrialOutcome,
    TrialRecord,
)
from tests.search.fakes import (
    SPACES,
    FakeClock,
    FakeRunner,
    FakeTask,
    Killed,
    SimulatedExecutor,
    killed_after,
    search_records,
)


def _run(tmp_path: Path, clock: FakeClock, runner: FakeRunner, executor_type: type = SimulatedExecutor,
         **flags: Any) -> list[TrialRecord]:
    return search_records(tmp_path, clock, runner, executor_type, **flags)


def _url(tmp_path: Path) -> str:
    """Where `search_records` keeps the study unless told otherwise."""
    return f"sqlite:///{tmp_path}/study.db"


def _study(url: str, name: str = "fake-1d") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _records(url: str, name: str = "fake-1d") -> list[TrialRecord]:
    return [TrialRecord.from_frozen(t) for t in _study(url, name).trials]


def _longest(records: list[TrialRecord], n: int) -> float:
    return sum(sorted((r.result.device_seconds for r in records), reverse=True)[:n])


def test_a_session_prunes_promotes_and_keeps_to_the_budget(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    records = _run(tmp_path, clock, runner, budget="120s")
    study = _study(_url(tmp_path))
    states = {r.state for r in records}
    assert {TrialState.COMPLETE, TrialState.PRUNED} <= states
    assert TrialState.RUNNING not in states

    spent = sum(r.result.device_seconds for r in records)
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(spent)
    assert spent <= 120.0 + _longest(records, 2)  # overrun: at most the trials in flight
    assert study.user_attrs["budget"] == {"text": "120s", "seconds": 120.0, "kind": "any"}
    assert study.user_attrs["sessions"][0]["finished"] is True
    assert study.user_attrs["search_space"]["sha256"]
    assert study.user_attrs["task_fingerprint"] == FakeTask("fake-1d").fingerprint()

    pruned = [r for r in records if r.state == TrialState.PRUNED]
    assert all(r.result.pruned and r.result.pruned.message for r in pruned)
    assert any(r.result.pruned and r.result.pruned.kind == PruneKind.ALIGNMENT for r in pruned)
    evidence = study.user_attrs["pruning_evidence"]["groups"]
    assert any(g["spearman_rho"] is not None and g["spearman_rho"] < 0 for g in evidence.values())

    short = [r for r in records if r.plan.stage == Stage.SHORT]
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert 1 <= len(full) <= 3  # the engine default first, then the top 2
    best_short = sorted((r for r in short if r.state == TrialState.COMPLETE),
                        key=lambda r: (-(r.val_score or 0), r.cost, r.number))[:2]
    default = study.user_attrs["engine_default_trial"]
    assert full[0].plan.promoted_from == default
    assert {r.plan.promoted_from for r in full} <= {r.number for r in best_short} | {default}
    study_trials = {t.number: t for t in study.trials}
    for r in records:
        assert study_trials[r.number].user_attrs["stage"] in ("short", "full")
        assert "device_seconds" in study_trials[r.number].user_attrs
        assert r.plan.config is not None
        if r.plan.config.align.metric != "none" and r.state != TrialState.FAIL:
            assert r.result.align_curve and r.result.final_align_loss is not None
    for w in full:
        assert w.state == TrialState.COMPLETE
        assert w.result.test is not None and w.result.model_dir
        assert json.loads((Path(w.result.model_dir) / "meta.json").read_text()) == {"trial": w.number}
        assert Path(w.result.model_dir).parent == tmp_path / "fake-1d" / "winners"
        assert w.params == next(r for r in short if r.number == w.plan.promoted_from).params
    assert all(r.result.test is None for r in short)  # test data only for the winners
    assert all(c.stage == Stage.SHORT for c in runner.calls[: len(short)])


def test_failed_trials_are_recorded_and_a_broken_setup_stops_early(tmp_path: Path) -> None:
    clock = FakeClock()
    records = _run(tmp_path, clock, FakeRunner(clock, fail_when={"align.metric": "none"}), budget="60s")
    failed = [r for r in records if r.state == TrialState.FAIL]
    assert failed and all("fake failure" in (r.result.error or "") for r in failed)
    assert all("Traceback" in (r.result.traceback or "") for r in failed)
    assert any(r.state == TrialState.COMPLETE for r in records)

    broken = tmp_path / "broken"
    broken.mkdir()
    runner = FakeRunner(clock, fail_when={"model.backbone": "minilm"})
    with pytest.raises(SearchFailed, match="first [34] trials of this run failed"):
        _run(broken, clock, runner, budget="600s")
    assert len(runner.calls) <= 4


#: Dies (like a SIGKILLed driver) while short trials run, after 6 have finished.
_KillInSearch = killed_after(6)


class _KillInPromotion(SimulatedExecutor):
    """Dies while a promoted trial trains in full."""

    def wait(self, timeout: float) -> list[TrialOutcome]:
        if Stage.FULL in self.stages.values():
            raise Killed()
        return super().wait(timeout)


@pytest.mark.parametrize("killer", [_KillInSearch, _KillInPromotion])
def test_resume_after_a_kill_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, killer: type[SimulatedExecutor], storage_url: str
) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    with pytest.raises(Killed):
        _run(tmp_path, clock, runner, executor_type=killer, budget="60s", storage=storage_url)
    before = {r.number: r for r in _records(storage_url)}
    running = {n for n, r in before.items() if r.state == TrialState.RUNNING}
    assert running  # the kill left trials RUNNING
    assert not _study(storage_url).user_attrs["sessions"][-1]["finished"]

    after_records = _run(tmp_path, clock, runner, budget="60s", storage=storage_url)
    after = {r.number: r for r in after_records}
    for n, r in before.items():  # finished trials are kept as they were
        if r.finished:
            assert after[n].state == r.state and after[n].val_score == r.val_score
            assert after[n].result.device_seconds == r.result.device_seconds
    for n in running:
        assert after[n].state == TrialState.FAIL and after[n].result.interrupted
        assert after[n].result.device_seconds_estimated is True
        if after[n].plan.stage == Stage.SHORT:  # retried exactly once, with the same parameters
            retries = [r for r in after_records if r.plan.retry_of == n]
            assert len(retries) == 1 and retries[0].params == after[n].params
    study = _study(storage_url)
    sessions = study.user_attrs["sessions"]
    assert len(sessions) == 1 and sessions[0]["finished"]  # the same budget session, resumed
    spent = sum(r.result.device_seconds for r in after_records)
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(spent)
    assert spent <= 60.0 + _longest(after_records, 2) + _longest(list(before.values()), 2)
    promoted = [r.plan.promoted_from for r in after_records if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE]
    assert len(promoted) == len(set(promoted)) >= 1  # no winner promoted twice
    _assert_default_lineage_marked(after_records, study.user_attrs["engine_default_trial"])


def _assert_default_lineage_marked(records: list[TrialRecord], default: int) -> None:
    """Exactly the engine default's trial, its retries and its full runs are marked."""
    by_number = {r.number: r for r in records}

    def root(record: TrialRecord) -> int:
        parent = record.plan.retry_of if record.plan.retry_of is not None else record.plan.promoted_from
        return record.number if parent is None else root(by_number[parent])

    assert {r.number for r in records if r.plan.engine_default} == {
        r.number for r in records if root(r) == default}


class _KillAtOnce(SimulatedExecutor):
    """Dies while the first trials (the engine's default among them) run."""

    def wait(self, timeout: float) -> list[TrialOutcome]:
        raise Killed()


def test_a_retried_default_is_still_the_default(tmp_path: Path, storage_url: str) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    with pytest.raises(Killed):
        _run(tmp_path, clock, runner, executor_type=_KillAtOnce, budget="60s", storage=storage_url)
    records = _run(tmp_path, clock, runner, budget="60s", storage=storage_url)
    default = _study(storage_url).user_attrs["engine_default_trial"]
    retries = [r for r in records if r.plan.retry_of == default]
    assert len(retries) == 1 and retries[0].plan.engine_default
    assert retries[0].state == TrialState.COMPLETE
    _assert_default_lineage_marked(records, default)


def test_the_same_command_again_adds_a_session_without_double_promotion(
    tmp_path: Path, storage_url: str
) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    first = _run(tmp_path, clock, runner, budget="40s", storage=storage_url)
    second = _run(tmp_path, clock, runner, budget="40s", storage=storage_url)
    assert len(second) > len(first)
    sessions = _study(storage_url).user_attrs["sessions"]
    assert [s["finished"] for s in sessions] == [True, True]
    assert {r.plan.session for r in second} == {0, 1}
    configs = [json.dumps(r.plan.config.to_dict() if r.plan.config else None, sort_keys=True)
               for r in second
               if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE]
    assert len(configs) == len(set(configs))


def test_the_reserve_grows_to_what_the_best_configuration_needs(tmp_path: Path) -> None:
    from orca_automl.search import full_cost_estimate

    space = tmp_path / "no-share.yaml"
    space.write_text((SPACES / "tiny.yaml").read_text().replace("share: 0.3", "share: 0.0"))
    clock = FakeClock()
    records = _run(tmp_path, clock, FakeRunner(clock), budget="60s", search_space=str(space))
    short = [r for r in records if r.plan.stage == Stage.SHORT]
    (winner,) = [r for r in records if r.plan.stage == Stage.FULL]
    source = next(r for r in short if r.number == winner.plan.promoted_from)
    need = min(full_cost_estimate(source), 30.0)
    assert sum(r.result.device_seconds for r in short) <= 60.0 - need + _longest(short, 2)
    assert sum(r.result.device_seconds for r in records) <= 60.0 + _longest(records, 2)


def test_what_a_killed_save_left_is_removed_and_saved_winners_stay(tmp_path: Path) -> None:
    from orca_automl.search._loop import remove_partial

    for name in (".partial-x1/model", ".trial-7.ab12/backbone", "trial-2/backbone"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / ".notes").write_text("a hidden file is not a save")
    remove_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes", "trial-2"]
    remove_partial(tmp_path / "absent")  # no winners yet: nothing to do
