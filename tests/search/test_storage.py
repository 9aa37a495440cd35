"""StudyHandle's storage operations beyond optuna.Study, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import optuna

from orca_automl.search import (
    StoredPredictions,
    StudyHandle,
    TrialPlan,
    TrialRecord,
    TrialResult,
    check_storage_url,
    redact_url,
)


def test_a_trial_made_like_another_can_sample_what_its_source_lacks(storage_url: str) -> None:
    """A retry of a trial killed mid-sampling: the copy has some parameters and suggests the rest."""
    handle = StudyHandle.open(storage_url, "s", optuna.samplers.RandomSampler(0), {})
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


def test_predictions_round_trip_through_the_artifact_store(storage_url: str) -> None:
    handle = StudyHandle.open(storage_url, "s", optuna.samplers.RandomSampler(0), {})
    trial = handle.study.ask()
    stored = StoredPredictions(np.arange(6, dtype=np.float32).reshape(3, 2), np.array([4, 0, 2]),
                               np.ones((2, 2), np.float32))
    artifact = handle.upload_predictions(trial, stored)
    handle.write(trial, TrialResult(predictions_artifact=artifact), "predictions_artifact")
    back = handle.predictions(handle.records()[0])
    assert back is not None and back.rows is not None and back.test is not None
    np.testing.assert_array_equal(back.val, stored.val)
    np.testing.assert_array_equal(back.rows, stored.rows)
    np.testing.assert_array_equal(back.test, stored.test)


def test_a_plain_postgresql_url_goes_through_psycopg_3(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert check_storage_url(plain) == postgres_url
    assert redact_url(postgres_url).startswith("postgresql+psycopg://orca:***@")
