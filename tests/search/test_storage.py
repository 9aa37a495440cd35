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


def test_predictions_are_matched_on_the_rows_all_of_them_predicted() -> None:
    import numpy as np

    from orca_automl.search import StoredPredictions, on_rows, shared_validation_rows

    # a bag of all folds predicted rows 0-5 (shuffled, as folds concatenate); a smaller bag 1, 3, 4
    full = StoredPredictions(np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]]),
                             np.array([4, 1, 0, 5, 3, 2]))
    small = StoredPredictions(np.array([[10.0], [11.0], [12.0]]), np.array([3, 1, 4]))
    rows = shared_validation_rows([full, small])
    assert rows is not None and rows.tolist() == [1, 3, 4]
    assert on_rows(full, rows).val.ravel().tolist() == [1.0, 4.0, 0.0]  # rows 1, 3, 4 of full
    assert on_rows(small, rows).val.ravel().tolist() == [11.0, 10.0, 12.0]
    assert on_rows(full, rows).rows.tolist() == [1, 3, 4]  # type: ignore[union-attr]
    holdout = StoredPredictions(np.zeros((3, 1)))
    assert shared_validation_rows([holdout, holdout]) is None
    assert on_rows(holdout, None) is holdout
