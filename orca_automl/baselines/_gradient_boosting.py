"""Tables: scikit-learn's histogram gradient boosting, the strong default on tabular data."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.multioutput import MultiOutputRegressor

from orca_automl.baselines._common import Estimator, predicted_proba, tuned
from orca_automl.baselines._registry import BASELINES, BaselineInfo, FittedBaseline
from orca_automl.tasks import Task

GRID: dict[str, list[Any]] = {"learning_rate": [0.03, 0.1, 0.3], "max_leaf_nodes": [7, 15, 31]}


@BASELINES.register(
    "gradient_boosting",
    BaselineInfo("HistGB", modalities=("tabular",), task_types=("classification", "regression")),
)
def gradient_boosting(task: Task, seed: int) -> FittedBaseline:
    """HistGradientBoosting, learning rate and leaf count chosen on validation (`seed` seeds
    it); its own class probabilities for classification, one model per target for regression.
    """
    def make(**params: Any) -> Estimator:
        if task.task_type == "classification":
            return HistGradientBoostingClassifier(random_state=seed, **params)
        return MultiOutputRegressor(HistGradientBoostingRegressor(random_state=seed, **params))

    return tuned(task, make, GRID, predict=predicted_proba)
