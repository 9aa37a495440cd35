"""1-NN: the floor any learned model must clear, for every modality and task type."""

from __future__ import annotations

from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from orca_automl.baselines._common import flat, predicted, targets
from orca_automl.baselines._registry import BASELINES, BaselineInfo, FittedBaseline
from orca_automl.tasks import MODALITIES, TASK_TYPES, Task


@BASELINES.register(
    "one_nn", BaselineInfo("1-NN", modalities=MODALITIES, task_types=TASK_TYPES)
)
def one_nn(task: Task, seed: int) -> FittedBaseline:
    """Euclidean 1-NN on the normalised, flattened inputs: each sample gets its nearest
    training sample's class (one-hot), labels, values or whole output field. Nothing is
    tuned or random (`seed` is unused)."""
    labelled = task.task_type in ("classification", "multilabel")
    model = KNeighborsClassifier(1) if labelled else KNeighborsRegressor(1)
    model.fit(flat(task.train.X), targets(task))
    return FittedBaseline(lambda X: predicted(task, model, flat(X)),
                          refit=lambda other: one_nn(other, seed))
