"""The baseline registry, its one factory `fit_baseline`, and which baselines fit a task.

Each baseline is registered where it is defined, with a `BaselineInfo` saying what the search
must know before fitting it: the modalities and task types it applies to, and its name in
tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry
from orca_automl.tasks import MODALITIES, TASK_TYPES, Task


@dataclass(frozen=True)
class BaselineInfo:
    """What is known of a registered baseline without fitting it.

    Attributes:
        display_name: its name in tables ("RBF SVM").
        modalities: task modalities it applies to. A field's classical method lists its
            field's modality only; a method for every field (1-NN) lists them all.
        task_types: the task types it predicts.
    """

    display_name: str
    modalities: tuple[str, ...]
    task_types: tuple[str, ...]

    def __post_init__(self) -> None:
        for what, given, known in (("modalities", self.modalities, MODALITIES),
                                   ("task_types", self.task_types, TASK_TYPES)):
            if not given or not set(given) <= set(known):
                raise ValueError(f"baseline {what} {given}: give one or more of {known}")


@dataclass(frozen=True)
class FittedBaseline:
    """What a registered baseline returns once fitted.

    Attributes:
        predict: the task's (normalised) inputs (N, *input_shape) -> predictions in the form
            of `orca_automl.tasks.to_predictions`.
        params: the hyperparameters it chose (empty when it tunes none).
        refit: the same method fitted on another task's training split with the
            hyperparameters chosen here, without tuning again (that split may hold the
            validation rows they were chosen on); None where the baseline offers none.
    """

    predict: Callable[[np.ndarray], np.ndarray]
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    refit: Callable[[Task], FittedBaseline] | None = field(default=None, compare=False)


class BaselineFit(Protocol):
    """Fits a baseline on `task.train`, choosing any hyperparameters on `task.val` (never on
    `task.test`); `seed` seeds whatever is random in it."""

    def __call__(self, task: Task, seed: int) -> FittedBaseline: ...


BASELINES: Registry[BaselineFit, BaselineInfo] = Registry("baseline", BaselineInfo)


@dataclass(frozen=True)
class BaselineResult:
    """A fitted baseline's predictions on the validation and test splits.

    Attributes:
        name: the registered baseline.
        val, test: predictions in the form of `orca_automl.tasks.to_predictions` (read-only),
            so they can be scored with `metric_for` and averaged with other models'.
        params: the hyperparameters it chose on the validation split.
        fit_seconds: wall seconds to fit on train, the hyperparameter choice and any refit
            included (predicting val and test not).
    """

    name: str
    val: np.ndarray
    test: np.ndarray
    params: Mapping[str, Any] = field(hash=False)
    fit_seconds: float

    def __post_init__(self) -> None:
        for split in ("val", "test"):
            predictions = np.array(getattr(self, split))
            predictions.setflags(write=False)
            object.__setattr__(self, split, predictions)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


def field_baselines(task: Task) -> list[str]:
    """The registered baselines that apply to `task`: its field's classical methods first
    (those registered for fewer modalities), then the general ones such as 1-NN.

    Example:
        >>> from orca_automl.tasks import load_task
        >>> field_baselines(load_task("gunpoint", seed=0))
        ['minirocket', 'one_nn']
    """
    applicable = [
        name for name in BASELINES.names()
        if task.modality in BASELINES.info(name).modalities
        and task.task_type in BASELINES.info(name).task_types
    ]
    return sorted(applicable, key=lambda name: (len(BASELINES.info(name).modalities), name))


def fit_baseline(name: str, task: Task, seed: int, *, refit: bool = False) -> BaselineResult:
    """Fit the registered baseline `name` on `task` and predict its validation and test splits.

    With `refit`, the test predictions come from the method fitted once more, with the
    hyperparameters it chose, on training and validation data together (`task.refit()`), as
    scikit-learn's GridSearchCV does after its search; the validation predictions stay those
    of the fit on the training split, so they still score it honestly.

    An unknown name, or a baseline that does not apply to the task's modality or type, raises
    `OrcaInputError` with one line naming the baselines that do.
    """
    fit = BASELINES.get(name)
    info = BASELINES.info(name)
    if task.modality not in info.modalities or task.task_type not in info.task_types:
        raise OrcaInputError(
            f"baseline {name!r} applies to {'/'.join(info.modalities)} "
            f"{'/'.join(info.task_types)} tasks, not to {task.name!r} "
            f"({task.modality} {task.task_type}): choose one of {', '.join(field_baselines(task))}"
        )
    start = time.perf_counter()
    fitted = fit(task, seed)
    final = fitted
    if refit:
        if fitted.refit is None:
            raise OrcaInputError(f"baseline {name!r} cannot be refitted on training + "
                                 "validation data: its fit returns no `refit`")
        final = fitted.refit(task.refit())
    seconds = time.perf_counter() - start
    predictions = {}
    for split_name, model in (("val", fitted), ("test", final)):
        split = getattr(task, split_name)
        predictions[split_name] = model.predict(split.X)
        expected = (len(split), *task.output_shape)
        if predictions[split_name].shape != expected:
            raise ValueError(
                f"baseline {name!r} predicted shape {predictions[split_name].shape} on "
                f"{split_name}; {task.task_type} task {task.name!r} needs {expected}"
            )
    return BaselineResult(name, predictions["val"], predictions["test"], fitted.params, seconds)
