"""What users would do without orca-automl: the classical method of each field, and 1-NN.

Every baseline sees the same splits as our models: it trains on the training split, picks its
hyperparameters on the validation split (never on test), and is scored once on test with the
task's own metric.

- Time series (1D): MiniRocket (sktime, Dempster et al. 2021) features + ridge with its
  built-in leave-one-out choice of the penalty, the method's standard recipe.
- Images (2D): an RBF SVM, C and gamma chosen on validation (flattened pixels).
- Tabular: scikit-learn's HistGradientBoosting, learning rate and leaf count chosen on
  validation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import RidgeClassifierCV, RidgeCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.svm import SVC, SVR

from orca_automl.tasks import Task, metric_for


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def _score(task: Task, y_true: np.ndarray, pred: np.ndarray) -> float:
    """The task's metric on hard predictions (class labels or values)."""
    if task.task_type == "classification":
        return float((pred == y_true).mean())
    return metric_for(task.task_type)(y_true, pred.reshape(y_true.shape).astype(np.float32))


def one_nn(task: Task) -> float:
    """1-NN Euclidean test score on the normalised, flattened inputs."""
    model = KNeighborsClassifier(1) if task.task_type == "classification" else KNeighborsRegressor(1)
    y = task.train.y if task.task_type == "classification" else _flat(task.train.y)
    model.fit(_flat(task.train.X), y)
    return _score(task, task.test.y, model.predict(_flat(task.test.X)))


def _tuned(task: Task, make: Callable[..., Any], grid: dict[str, list[Any]],
           features: Callable[[np.ndarray], np.ndarray] = _flat) -> float:
    """Fit one model per grid point on train, keep the best on validation, score it on test."""
    X_tr, X_va, X_te = (features(s.X) for s in (task.train, task.val, task.test))
    y_tr = task.train.y if task.task_type == "classification" else task.train.y.ravel()
    best_val, best_model = -np.inf, None
    for values in itertools.product(*grid.values()):
        model = make(**dict(zip(grid, values, strict=True))).fit(X_tr, y_tr)
        val = _score(task, task.val.y, model.predict(X_va))
        if val > best_val:
            best_val, best_model = val, model
    assert best_model is not None
    return _score(task, task.test.y, best_model.predict(X_te))


def minirocket(task: Task, seed: int) -> float:
    """MiniRocket features (fitted on train) + ridge with leave-one-out penalty choice."""
    from sktime.transformations.panel.rocket import MiniRocketMultivariate

    X_tr = task.train.X.astype(np.float64)
    transform = MiniRocketMultivariate(random_state=seed).fit(X_tr)

    def features(X: np.ndarray) -> np.ndarray:
        return np.asarray(transform.transform(X.astype(np.float64)))

    alphas = np.logspace(-3, 3, 10)
    if task.task_type == "classification":
        model = RidgeClassifierCV(alphas=alphas).fit(features(X_tr), task.train.y)
    else:
        model = RidgeCV(alphas=alphas).fit(features(X_tr), _flat(task.train.y))
    return _score(task, task.test.y, model.predict(features(task.test.X)))


def svm(task: Task) -> float:
    grid: dict[str, list[Any]] = {"C": [1.0, 10.0, 100.0], "gamma": ["scale", 1e-2, 1e-3]}
    return _tuned(task, SVC if task.task_type == "classification" else SVR, grid)


def gradient_boosting(task: Task, seed: int) -> float:
    grid: dict[str, list[Any]] = {"learning_rate": [0.03, 0.1, 0.3], "max_leaf_nodes": [7, 15, 31]}
    if task.task_type == "classification":
        return _tuned(task, lambda **kw: HistGradientBoostingClassifier(random_state=seed, **kw), grid)
    return _tuned(task, lambda **kw: HistGradientBoostingRegressor(random_state=seed, **kw), grid)


def classical(task: Task, seed: int) -> tuple[str, float]:
    """(name, test score) of the field's classical method for this task."""
    if task.modality == "1d":
        return "MiniRocket + ridge", minirocket(task, seed)
    if task.modality == "2d":
        return "RBF SVM (tuned)", svm(task)
    return "HistGradientBoosting (tuned)", gradient_boosting(task, seed)
