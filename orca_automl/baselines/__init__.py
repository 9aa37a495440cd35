"""Reference baselines: what users would do without orca-automl, on the same splits.

Each field's classical method (MiniRocket + ridge for time series, an RBF SVM for images,
HistGradientBoosting for tables) and 1-NN for every task. A baseline fits on the training
split, chooses its hyperparameters on the validation split (never on test), and predicts in
the one form of `orca_automl.tasks.to_predictions`, so its predictions are scored with
`metric_for` and averaged with neural models' like any other. `fit_baseline` is the one
factory (`refit=True`: the test predictions of the method fitted once more, with what it
chose, on training + validation data); register your own the same way as the built-ins:

    @BASELINES.register("my_method", BaselineInfo("Mine", ("tabular",), ("regression",)))
    def my_method(task: Task, seed: int) -> FittedBaseline: ...

Example:
    >>> from orca_automl.baselines import field_baselines, fit_baseline
    >>> from orca_automl.tasks import load_task, metric_for
    >>> task = load_task("breast_cancer", seed=0)
    >>> field_baselines(task)
    ['gradient_boosting', 'one_nn']
    >>> result = fit_baseline("one_nn", task, seed=0)
    >>> result.test.shape
    (142, 2)
    >>> round(metric_for(task.task_type)(task.test.y, result.test), 3)
    0.965
"""

from orca_automl.baselines import (  # noqa: F401  (registration)
    _gradient_boosting,
    _minirocket,
    _one_nn,
    _svm,
)
from orca_automl.baselines._registry import (
    BASELINES,
    BaselineFit,
    BaselineInfo,
    BaselineResult,
    FittedBaseline,
    field_baselines,
    fit_baseline,
)
from orca_automl.baselines._saved import SavedBaseline, load_baseline, save_baseline

__all__ = [
    "BASELINES",
    "BaselineFit",
    "BaselineInfo",
    "BaselineResult",
    "FittedBaseline",
    "SavedBaseline",
    "field_baselines",
    "fit_baseline",
    "load_baseline",
    "save_baseline",
]
