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
