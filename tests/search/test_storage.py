"""StudyHandle's storage operations beyond optuna.Study."""

from __future__ import annotations

from pathlib import Path

import optuna

from orca_automl.search import StudyHandle, TrialPlan, TrialRecord


def test_a_trial_made_like_another_can_sample_what_its_source_lacks(tmp_path: Path) -> None:
    """A retry of a trial killed mid-sampling: the copy has some parameters and suggests the rest."""
    handle = StudyHandle.open(f"sqlite:///{tmp_path}/s.db", "s", optuna.samplers.RandomSampler(0), {})
    source = handle.study.ask()
    source.suggest_float("x", 0.0, 1.0)  # killed here: "y" was never suggested
    record = TrialRecord.from_frozen(handle.study.get_trials(deepcopy=False)[0])
    retry = handle.ask_like(record, TrialPlan(retry_of=source.number))
    assert retry.suggest_float("x", 0.0, 1.0) == record.params["x"]
    y = retry.suggest_float("y", 0.0, 1.0)  # raised KeyError on the trial id before
    assert 0.0 <= y <= 1.0
    assert retry.number == 1
    assert TrialRecord.from_frozen(handle.study.get_trials()[1]).plan.retry_of == 0
