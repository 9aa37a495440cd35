"""What the built-in baselines share: flattened inputs, scikit-learn outputs in the one
prediction form, and the choice of hyperparameters on the validation split."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from orca_automl.baselines._registry import FittedBaseline
from orca_automl.tasks import Task, metric_for


class Estimator(Protocol):
    """A scikit-learn estimator, as far as the baselines use it."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


def flat(X: np.ndarray) -> np.ndarray:
    """One row per sample."""
    return X.reshape(len(X), -1)


def targets(task: Task) -> np.ndarray:
    """Training targets as scikit-learn takes them: class indices, 0/1 label rows, or
    regression and dense targets flattened to one row per sample."""
    if task.task_type in ("classification", "multilabel"):
        return task.train.y
    return flat(task.train.y)


def predicted(task: Task, model: Estimator, X: np.ndarray) -> np.ndarray:
    """`model.predict` in the one prediction form.

    A predicted class becomes its one-hot probability vector, predicted labels 0/1 label
    probabilities: ridge classifiers, an SVM without Platt scaling and 1-NN have no calibrated
    probabilities, and a softmax of their decision scores (on arbitrary scales) would be a
    calibration nobody fitted, whose argmax can even differ from the SVM's one-vs-one vote on
    ties. One-hot keeps the hard predictions, hence every metric, exactly the model's; an
    ensemble counts the baseline as one vote. Regression and dense values come back in the
    targets' shape and units, as float32 like `to_predictions`.
    """
    outputs = np.asarray(model.predict(X))
    if task.task_type == "classification":
        return np.eye(task.num_outputs)[outputs.astype(np.int64)]
    if task.task_type == "multilabel":
        return outputs.astype(np.float64)
    return outputs.reshape((len(outputs), *task.train.y.shape[1:])).astype(np.float32)


def predicted_proba(task: Task, model: Any, X: np.ndarray) -> np.ndarray:
    """`model.predict_proba` over all of the task's classes (a class absent from the training
    split gets probability 0); other task types as `predicted`."""
    if task.task_type != "classification":
        return predicted(task, model, X)
    proba = np.zeros((len(X), task.num_outputs))
    proba[:, model.classes_] = model.predict_proba(X)
    return proba


def tuned(
    task: Task,
    make: Callable[..., Estimator],
    grid: dict[str, list[Any]],
    predict: Callable[[Task, Any, np.ndarray], np.ndarray] = predicted,
) -> FittedBaseline:
    """Fit one model per grid point on the flattened training split and keep the one whose
    validation predictions score best with the task's metric (the first on ties)."""
    metric = metric_for(task.task_type)
    best_score, best = -np.inf, None
    for values in itertools.product(*grid.values()):
        candidate = fitted_with(task, make, dict(zip(grid, values, strict=True)), predict)
        score = metric.score(metric(task.val.y, candidate.predict(task.val.X)))
        if score > best_score:
            best_score, best = score, candidate
    assert best is not None, "an empty grid"
    return best


def fitted_with(
    task: Task,
    make: Callable[..., Estimator],
    params: dict[str, Any],
    predict: Callable[[Task, Any, np.ndarray], np.ndarray] = predicted,
) -> FittedBaseline:
    """`make(**params)` fitted on the flattened training split; its refit is the same on
    another task's."""
    model = make(**params)
    model.fit(flat(task.train.X), targets(task))
    return FittedBaseline(lambda X: predict(task, model, flat(X)), params,
                          refit=functools.partial(fitted_with, make=make, params=params,
                                                  predict=predict))
