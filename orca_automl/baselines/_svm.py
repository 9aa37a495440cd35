"""Images (2D): an RBF support vector machine on the flattened pixels."""

from __future__ import annotations

from typing import Any

from sklearn.multioutput import MultiOutputRegressor
from sklearn.svm import SVC, SVR

from orca_automl.baselines._common import Estimator, tuned
from orca_automl.baselines._registry import BASELINES, BaselineInfo, FittedBaseline
from orca_automl.tasks import Task

GRID: dict[str, list[Any]] = {"C": [1.0, 10.0, 100.0], "gamma": ["scale", 1e-2, 1e-3]}


@BASELINES.register(
    "svm",
    BaselineInfo("RBF SVM", modalities=("2d",), task_types=("classification", "regression")),
)
def svm(task: Task, seed: int) -> FittedBaseline:
    """RBF SVM, C and gamma chosen on validation; one SVR per target for regression.
    Deterministic: `seed` is unused. Classes come as one-hot vectors (see `predicted`): Platt
    scaling (`probability=True`) costs five more fits per grid point, and the argmax of its
    probabilities can disagree with the SVM's own predictions."""
    if task.task_type == "classification":
        return tuned(task, SVC, GRID)

    def make(**params: Any) -> Estimator:
        return MultiOutputRegressor(SVR(**params))

    return tuned(task, make, GRID)
