"""Time series (1D): MiniRocket features and a ridge read-out, the field's standard recipe."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeClassifierCV, RidgeCV

from orca_automl.baselines._common import predicted, targets
from orca_automl.baselines._registry import BASELINES, BaselineInfo, FittedBaseline
from orca_automl.tasks import Task

#: Ridge penalties, chosen by the ridge's own leave-one-out error on the training split.
ALPHAS = np.logspace(-3, 3, 10)


@BASELINES.register(
    "minirocket",
    BaselineInfo(
        "MiniRocket",
        modalities=("1d",),
        task_types=("classification", "multilabel", "regression", "dense"),
    ),
)
def minirocket(task: Task, seed: int) -> FittedBaseline:
    """MiniRocket (sktime; Dempster et al. 2021) features fitted on train (`seed` draws its
    biases), then ridge with its built-in leave-one-out choice of the penalty, as the method
    prescribes: the validation split is not used (so a refit, on another task's training
    split, chooses its penalty there by the same rule). A ridge classifier for classes and
    labels; a ridge regression for regression targets and, flattened, for dense outputs (one
    linear read-out per output value).
    """
    from sktime.transformations.panel.rocket import MiniRocketMultivariate

    transform = MiniRocketMultivariate(random_state=seed).fit(task.train.X.astype(np.float64))

    def features(X: np.ndarray) -> np.ndarray:
        return np.asarray(transform.transform(X.astype(np.float64)))

    labelled = task.task_type in ("classification", "multilabel")
    model = (RidgeClassifierCV if labelled else RidgeCV)(alphas=ALPHAS)
    model.fit(features(task.train.X), targets(task))
    return FittedBaseline(lambda X: predicted(task, model, features(X)),
                          {"alpha": float(model.alpha_)},
                          refit=lambda other: minirocket(other, seed))
