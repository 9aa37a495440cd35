"""Reference baselines in the study: scored once on the trials' validation protocol, charged to
the budget, kept apart from promotion and pruning, saved as models that compete under the
winner rule (or kept as references only), and shown in the winners table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.cli import winners_table
from orca_automl.search import SearchResult, Stage, StudyHandle, TrialRecord, run_search
from tests.search.fakes import (
    FakeClock,
    FakeRunner,
    FakeTask,
    fake_toolkit,
    options,
    simulated_execution,
)


def _search(tmp_path: Path, validation: str, budget: str = "120s",  # type: ignore[no-untyped-def]
            compete: bool = True):
    clock = FakeClock()
    return run_search(
        options(storage=f"sqlite:///{tmp_path}/study.db", budget=budget, workers=2,
                validation=validation, baselines_compete=compete),
        toolkit=fake_toolkit(FakeRunner(clock), baselines=["strong", "weak"]),
        execution=simulated_execution(clock),
    )


@pytest.mark.parametrize(("validation", "compete"), [("holdout", False), ("cv:4/2", True)])
def test_baselines_are_scored_once_on_the_same_protocol_charged_and_saved_to_compete(
    tmp_path: Path, validation: str, compete: bool
) -> None:
    result = _search(tmp_path, validation, compete=compete)
    baselines = result.baselines
    assert [b.plan.baseline for b in baselines] == ["strong", "weak"]  # best first
    task = FakeTask("fake-1d")
    handle = StudyHandle.open(f"sqlite:///{tmp_path}/study.db", "fake-1d",
                              optuna.samplers.RandomSampler(0), {})
    for b in baselines:
        assert b.state == TrialState.COMPLETE and b.plan.stage == Stage.BASELINE
        assert b.params == {} and b.result.device_seconds > 0 and b.result.test is not None
        stored = handle.predictions(b)
        assert stored is not None
        if validation == "holdout":
            assert stored.rows is None and len(stored.val) == len(task.val)
            assert b.result.fold_vals == ()
        else:
            assert stored.rows is not None
            assert sorted(stored.rows.tolist()) == list(range(task.size))  # every development row
            assert len(b.result.fold_vals) == 4
            assert b.val_score == pytest.approx(np.mean([v.score for v in b.result.fold_vals]))
        assert stored.test is not None and b.result.test is not None
        assert b.result.test.value == task.score(task.test.y, stored.test).value
    records = result.records
    spent = sum(r.result.device_seconds for r in records)
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(spent)
    numbers = {b.number for b in baselines}
    assert not any(r.plan.promoted_from in numbers for r in records)
    table = winners_table(result)
    assert "baseline: strong" in table
    if compete:
        _check_competing(tmp_path, result, task)
    else:  # references only: not saved, never the winner
        assert all(b.result.model_dir is None and not b.servable for b in baselines)
        assert result.decision is None or result.decision.winner not in numbers
        assert all(w.plan.stage == Stage.FULL for w in result.winners)
        assert "reference, not served" in table
    again = _search(tmp_path, validation, compete=compete)  # a resume does not fit them again
    assert [b.number for b in again.baselines] == [b.number for b in baselines]


def _check_competing(tmp_path: Path, result: SearchResult, task: FakeTask) -> None:
    """Saved under cross-validation as a bag of fold folders; the strong one, the better
    validated, is the incumbent, served unless a challenger beats it beyond noise."""
    strong, weak = result.baselines
    for b in (strong, weak):
        folder = Path(b.result.model_dir or "")
        assert b.servable and folder == tmp_path / "fake-1d" / "winners" / f"trial-{b.number}"
        assert json.loads((folder / "bag.json").read_text())["members"] == 4
        rows = [json.loads((folder / "members" / str(i) / "meta.json").read_text())["rows"]
                for i in range(4)]
        assert sum(rows) == 3 * task.size  # each fold model trained on the other 3 folds
    decision = result.decision
    assert decision is not None and decision.default is not None
    default = next(r for r in result.records if r.number == decision.default)
    assert strong.val_score > max(weak.val_score or 0.0, default.val_score or 0.0)
    assert decision.incumbent == strong.number
    verdicts = {c.trial: c for c in decision.comparisons}
    assert not verdicts[weak.number].beats and not verdicts[default.number].beats
    beating = [c for c in decision.comparisons if c.beats]
    assert decision.winner == (max(beating, key=lambda c: c.difference).trial if beating
                               else strong.number)
    assert result.winners[0].number == decision.winner
    assert "reference, not served" not in winners_table(result)


def test_no_baselines_when_asked(tmp_path: Path) -> None:
    clock = FakeClock()
    result = run_search(
        options(storage=f"sqlite:///{tmp_path}/study.db", budget="60s", baselines=False),
        toolkit=fake_toolkit(FakeRunner(clock), baselines=["strong"]),
        execution=simulated_execution(clock),
    )
    assert result.baselines == []
    assert not any(isinstance(r, TrialRecord) and r.plan.stage == Stage.BASELINE
                   for r in result.records)
    assert "baseline:" not in winners_table(result)


def test_the_best_so_far_shown_while_searching_is_never_a_baseline(tmp_path: Path) -> None:
    from orca_automl.search import Snapshot

    result = _search(tmp_path, "holdout")
    best = Snapshot.of(result.records, 0.0, 1.0, 0, "search").best
    assert best is not None and best.plan.stage != Stage.BASELINE
    assert result.baselines[0].val_score > best.val_score  # the strong baseline scored higher
