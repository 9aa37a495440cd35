"""Cross-validated trials against the fake runner on a fake clock: one run per fold, the mean
score, out-of-fold predictions in the artifact store, bags of fold models, and resume."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.errors import OrcaInputError
from orca_automl.search import (
    REFIT,
    Stage,
    StudyHandle,
    TrialRecord,
    Validation,
    parse_validation,
)
from tests.search.fakes import (
    FakeClock,
    FakeRunner,
    FakeTask,
    Killed,
    SimulatedExecutor,
    killed_after,
    search_records,
)


def _run(tmp_path: Path, clock: FakeClock, runner: FakeRunner,
         executor_type: type = SimulatedExecutor, **flags: Any) -> list[TrialRecord]:
    flags.setdefault("validation", "cv:4/2")
    return search_records(tmp_path, clock, runner, executor_type, **flags)


def _records(tmp_path: Path) -> list[TrialRecord]:
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    return [TrialRecord.from_frozen(t) for t in study.trials]


def _handle(tmp_path: Path) -> StudyHandle:
    return StudyHandle.open(f"sqlite:///{tmp_path}/study.db", "fake-1d",
                            optuna.samplers.RandomSampler(0), {})


def test_validation_specs() -> None:
    assert parse_validation("holdout", 40, 0) == Validation()
    assert parse_validation("cv:5", 40, 3) == Validation(5, 2, 3)
    assert parse_validation("cv:4/3", 40, 0).folds_of(Stage.SHORT) == (0, 1, 2)
    assert parse_validation("cv:4/3", 40, 0).folds_of(Stage.FULL) == (0, 1, 2, 3)
    assert parse_validation("auto", 40, 0) == Validation(5, 2, 0)
    assert not parse_validation("auto", 5000, 0).cross_validated
    # digits' 1258 development samples are cross-validated; the threshold itself is held out
    assert parse_validation("auto", 1258, 0) == Validation(5, 2, 0)
    assert parse_validation("auto", 1999, 0).cross_validated
    assert not parse_validation("auto", 2000, 0).cross_validated
    for bad, words in (("cv:1", "2 folds or more"), ("cv:5/6", "cv:K/S"), ("k-fold", "not understood"),
                       ("cv:30", "too few for 30 folds")):
        with pytest.raises(OrcaInputError, match=words):
            parse_validation(bad, 40, 0)


def test_a_trial_is_one_run_per_fold_scored_by_their_mean(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    records = _run(tmp_path, clock, runner, budget="200s")
    task = FakeTask("fake-1d")
    folds = task.fold_indices(4, seed=0)
    handle = _handle(tmp_path)
    short = [r for r in records if r.plan.stage == Stage.SHORT and r.state == TrialState.COMPLETE]
    assert short
    for r in short:
        assert r.plan.folds == (0, 1)
        calls = [c for c in runner.calls if c.number == r.number]
        assert sorted(c.fold.index for c in calls if c.fold) == [0, 1]
        assert len(r.result.fold_vals) == 2
        assert r.val_score == pytest.approx(statistics.fmean(v.score for v in r.result.fold_vals))
        assert r.result.val_spread == pytest.approx(
            statistics.stdev(v.score for v in r.result.fold_vals))
        assert [run.fold for run in r.result.runs] == [0, 1]
        assert r.result.device_seconds == pytest.approx(
            sum(run.device_seconds or 0.0 for run in r.result.runs))
        stored = handle.predictions(r)
        assert stored is not None
        predictions, rows = stored.val, stored.rows
        assert stored.test is None  # short trials are never tested
        assert rows is not None and sorted(rows.tolist()) == sorted(np.concatenate(folds[:2]).tolist())
        assert predictions.shape == (len(rows), 2)
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-6)
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert full
    assert full[0].plan.folds == (0, 1, 2, 3)  # the first promoted: its whole bag
    for w in full:  # a later one keeps the folds the budget left it (two at least), in order
        members = len(w.plan.folds)
        assert w.state == TrialState.COMPLETE and w.plan.folds == tuple(range(members))
        assert members >= 2
        stored = handle.predictions(w)
        assert stored is not None and stored.rows is not None and stored.test is not None
        in_bag = np.concatenate(folds[:members])
        assert sorted(stored.rows.tolist()) == sorted(in_bag.tolist())
        short_cost = next(r.cost for r in short if r.number == w.plan.promoted_from)
        assert w.cost == pytest.approx(members * (short_cost or 0.0))  # the bag runs them all
        rescored = task.score(task.test.y, stored.test)  # the bag's averaged test predictions
        assert w.result.test is not None and w.result.test.value == rescored.value
        assert w.result.test.loss == pytest.approx(rescored.loss, rel=1e-6)  # stored as float32
        bag = json.loads((Path(w.result.model_dir or "") / "bag.json").read_text())
        assert bag["members"] == members
    spent = sum(r.result.device_seconds for r in records)
    longest = sorted((r.result.device_seconds for r in records), reverse=True)[:2]
    assert spent <= 200.0 + sum(longest)
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.user_attrs["validation"] == {"kind": "cv", "folds": 4, "short_folds": 2, "seed": 0}
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(spent)


def test_a_failed_fold_run_ends_its_trial_without_starting_its_other_folds(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock, fail_when={"align.metric": "none"})
    records = _run(tmp_path, clock, runner, budget="120s", workers=1)
    failed = [r for r in records if r.state == TrialState.FAIL]
    assert failed
    for r in failed:
        assert len([c for c in runner.calls if c.number == r.number]) == 1
        assert "fake failure" in (r.result.error or "")


#: Dies after a few runs, while a cross-validated trial has finished some of its folds.
_KillMidTrial = killed_after(7)


def test_a_kill_between_folds_resumes_without_losing_or_double_charging(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    with pytest.raises(Killed):
        _run(tmp_path, clock, runner, executor_type=_KillMidTrial, budget="200s", workers=1)
    before = {r.number: r for r in _records(tmp_path)}
    running = [r for r in before.values() if r.state == TrialState.RUNNING]
    assert running and any(
        any(run.device_seconds is not None for run in r.result.runs) for r in running
    ), "the kill must land after a fold of a running trial finished"

    after_records = _run(tmp_path, clock, runner, budget="200s", workers=1)
    after = {r.number: r for r in after_records}
    for r in running:
        reconciled = after[r.number]
        assert reconciled.state == TrialState.FAIL and reconciled.result.interrupted
        finished = sum(run.device_seconds or 0.0 for run in r.result.runs)
        assert reconciled.result.device_seconds >= finished  # finished folds are charged once
        if r.plan.stage == Stage.SHORT:
            assert sum(x.plan.retry_of == r.number for x in after_records) == 1
    for n, r in before.items():
        if r.finished:
            assert after[n].result == r.result
    assert not any(r.state == TrialState.RUNNING for r in after_records)
    spent = sum(r.result.device_seconds for r in after_records)
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(spent)
    promoted = [r.plan.promoted_from for r in after_records
                if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE]
    assert len(promoted) == len(set(promoted)) >= 1


def test_a_study_resumes_only_under_its_own_validation_protocol(tmp_path: Path) -> None:
    clock = FakeClock()
    _run(tmp_path, clock, FakeRunner(clock), budget="60s")
    with pytest.raises(OrcaInputError, match="scored with validation cv:4/2 .* not holdout"):
        _run(tmp_path, clock, FakeRunner(clock), budget="60s", validation="holdout")
    assert math.isfinite(sum(r.result.device_seconds for r in _records(tmp_path)))


def test_a_short_trial_whose_first_fold_loses_sample_by_sample_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orca_automl.search import (
        AlignLossPruner,
        FoldPruner,
        PruneKind,
        RefineMedianPruner,
        _search,
    )

    monkeypatch.setattr(_search, "pruners", lambda mode: (  # the fold rule alone
        AlignLossPruner(enabled=False), RefineMedianPruner(enabled=False),
        FoldPruner(enabled=mode == "all")))
    clock = FakeClock()
    runner = FakeRunner(clock, noise=1.0)  # scores spread widely: some configurations lose clearly
    records = _run(tmp_path, clock, runner, budget="300s", validation="cv:2/2", pruning="all")
    stopped = [r for r in records if r.result.pruned and r.result.pruned.kind == PruneKind.FOLDS]
    assert stopped
    for r in stopped:
        assert r.state == TrialState.PRUNED and r.plan.stage == Stage.SHORT
        assert len([c for c in runner.calls if c.number == r.number]) == 1  # fold 1 never ran
        assert "Wilcoxon" in r.result.pruned.message
        best = int(r.result.pruned.message.split("best trial ")[1].split("'")[0])
        assert next(x for x in records if x.number == best).state == TrialState.COMPLETE
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    assert "Wilcoxon" in study.user_attrs["pruning_evidence"]["fold_rule"]
    quiet = tmp_path / "off"
    quiet.mkdir()
    clock = FakeClock()
    runner = FakeRunner(clock, noise=1.0)
    records = _run(quiet, clock, runner, budget="300s", validation="cv:2/2", pruning="off")
    assert not [r for r in records if r.result.pruned]


def test_a_bag_the_budget_cannot_pay_for_keeps_fewer_folds(tmp_path: Path) -> None:
    clock = FakeClock()
    records = _run(tmp_path, clock, FakeRunner(clock), budget="60s", validation="cv:4/1",
                   workers=1, top_k=1)
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert full
    incumbent = full[0]
    assert 2 <= len(incumbent.plan.folds) < 4  # all four would not fit in 60 s
    assert [run.fold for run in incumbent.result.runs] == list(incumbent.plan.folds)
    spent = sum(r.result.device_seconds for r in records)
    one_run = max(run.device_seconds or 0.0 for run in incumbent.result.runs)
    assert spent <= 60.0 + 2 * one_run  # overrun: the smallest bag's runs, not a whole bag


def test_budget_left_after_the_incumbent_buys_a_challenger_with_a_smaller_bag(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    records = _run(tmp_path, clock, FakeRunner(clock), budget="120s", validation="cv:4/1",
                   workers=1, top_k=2, pruning="off")
    full = [r for r in records if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE]
    incumbent, challenger = sorted(full, key=lambda r: not r.plan.engine_default)
    assert incumbent.plan.engine_default and incumbent.plan.folds == (0, 1, 2, 3)
    assert 2 <= len(challenger.plan.folds) < 4  # its whole bag would not have fitted
    spent = sum(r.result.device_seconds for r in records)
    one_run = max(run.device_seconds or 0.0 for run in challenger.result.runs)
    # used (without the smaller bag, 50 s, three runs, were left over), and not overrun
    assert 120.0 - 2 * one_run <= spent <= 120.0 + one_run
    # the winner rule compared the two on the samples both predicted out of fold
    stored = _handle(tmp_path).predictions(challenger)
    assert stored is not None and stored.rows is not None
    winner = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db"
                               ).user_attrs["winner"]
    assert [(c["trial"], c["samples"]) for c in winner["comparisons"]] == [
        (challenger.number, len(stored.rows))]


def test_with_refit_a_full_trial_serves_one_model_trained_on_all_development_data(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    runner = FakeRunner(clock)
    records = _run(tmp_path, clock, runner, budget="200s", refit=True, top_k=1)
    task = FakeTask("fake-1d")
    handle = _handle(tmp_path)
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert full
    for w in full:
        assert w.state == TrialState.COMPLETE and w.plan.refit
        calls = [c for c in runner.calls if c.number == w.number]
        assert [c.slot for c in calls] == [*w.plan.folds, REFIT]  # the refit run comes last
        assert [run.fold for run in w.result.runs] == [*w.plan.folds, REFIT]
        assert w.result.device_seconds == pytest.approx(
            sum(run.device_seconds or 0.0 for run in w.result.runs))
        # validation evidence is the folds' (out of fold); the refit model adds none
        stored = handle.predictions(w)
        assert stored is not None and stored.rows is not None and stored.test is not None
        folds = task.fold_indices(4, seed=0)
        assert sorted(stored.rows.tolist()) == sorted(
            np.concatenate([folds[i] for i in w.plan.folds]).tolist())
        assert len(w.result.fold_vals) == len(w.plan.folds) >= 2
        # served: the refit model alone, tested on its own predictions, at one model's cost
        short_cost = next(r.cost for r in records if r.number == w.plan.promoted_from)
        assert w.cost == pytest.approx(short_cost)
        assert w.result.test is not None and w.result.bag_test is not None
        assert w.result.test.value == task.score(task.test.y, stored.test).value
        assert json.loads((Path(w.result.model_dir or "") / "meta.json").read_text()) == {
            "trial": w.number}
    # without the flag, or on the hold-out split, no refit run
    (tmp_path / "holdout").mkdir()
    clock = FakeClock()
    plain = _run(tmp_path / "holdout", clock, FakeRunner(clock), budget="200s", refit=True,
                 validation="holdout")
    assert not any(r.plan.refit or r.result.bag_test for r in plain)


def test_a_trial_sums_its_runs_device_and_step_seconds() -> None:
    """Two fold runs and a refit run: the budget's charge and its steps' share add up."""
    from orca_automl.evaluation import Evaluation
    from orca_automl.search._folds import combine_runs
    from orca_automl.search._records import TrialResult
    from orca_automl.search._runner import TrialOutcome

    val = Evaluation("accuracy", 0.5, 0.5, 1.0)
    outcomes = [TrialOutcome(0, TrialResult(device_seconds=d, step_seconds=s, val=val), fold=f)
                for d, s, f in ((10.0, 6.0, 0), (12.0, 7.0, 1), (15.0, 9.0, REFIT))]
    combined = combine_runs(outcomes, FakeTask()).result
    assert (combined.device_seconds, combined.step_seconds) == (37.0, 22.0)
