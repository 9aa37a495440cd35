"""Predictions in one form: what `to_predictions` makes of raw outputs, and `Task.score` on
them agrees with the training loss and metric computed on raw outputs (the cycle's path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orca_automl.tasks import loss_for, metric_for


@pytest.mark.parametrize("task_type", ["classification", "multilabel", "regression", "dense"])
def test_score_of_predictions_matches_metric_and_loss_of_raw_outputs(toy_task, task_type: str) -> None:  # type: ignore[no-untyped-def]
    task = toy_task(task_type)
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(len(task.val), *task.output_shape)).astype(np.float32)
    predictions = task.predictions(outputs)
    if task_type == "classification":
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0)
        assert (predictions.argmax(axis=1) == outputs.argmax(axis=1)).all()
    evaluation = task.score(task.val.y, predictions)
    y = task.val.y
    target = torch.from_numpy(np.asarray(task.normalizer.normalize_y(y)))
    target = target.long() if task_type == "classification" else target.float()
    expected_loss = float(loss_for(task_type)(torch.from_numpy(outputs), target))
    assert evaluation.loss == pytest.approx(expected_loss, rel=1e-5)
    raw_form = outputs if task_type == "classification" else predictions
    assert evaluation.value == pytest.approx(metric_for(task_type)(y, raw_form))


def test_accuracy_and_r2_equal_scikit_learns() -> None:
    """The metrics skip scikit-learn's input checks for speed; their values are its values,
    on bootstrap-like resamples (repeated rows), integer or float labels, several outputs and
    constant outputs (predicted exactly or not)."""
    import warnings

    from sklearn.metrics import accuracy_score, r2_score

    rng = np.random.default_rng(0)
    accuracy, r2 = metric_for("classification"), metric_for("regression")
    for _ in range(50):
        n = int(rng.integers(2, 40))
        rows = rng.integers(0, n, n)
        y = rng.integers(0, 3, n)[rows]
        proba = rng.random((n, 3))[rows]
        for labels in (y, y.astype(np.float32)):
            assert accuracy(labels, proba) == accuracy_score(labels, proba.argmax(axis=1))
        target = rng.normal(size=(n, 2))[rows]
        pred = target + rng.normal(scale=0.5, size=target.shape)
        target[:, 1] = 3.0  # a constant output: scored 0.0 unless predicted exactly
        for p in (pred, np.where(np.arange(2) == 1, 3.0, pred)):
            assert r2(target, p) == pytest.approx(r2_score(target, p), abs=1e-12)
            assert r2(target[:, 0], p[:, 0]) == pytest.approx(r2_score(target[:, 0], p[:, 0]), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(r2(np.ones(1), np.zeros(1))) and np.isnan(r2_score(np.ones(1), np.zeros(1)))
