"""Which baselines apply to which task, what the factory refuses, and the prediction form for
every task type (multilabel, multi-target regression and dense on small synthetic tasks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, replace
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifierCV, RidgeCV
from sklearn.svm import SVR

from orca_automl.baselines import (
    BASELINES,
    BaselineInfo,
    FittedBaseline,
    field_baselines,
    fit_baseline,
)
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Split, Task

MakeTask = Callable[..., Task]
SHAPES = {"1d": (2, 32), "2d": (1, 6, 6), "tabular": (7,)}

FIELD = {
    ("1d", "classification"): ["minirocket", "one_nn"],
    ("1d", "multilabel"): ["minirocket", "one_nn"],
    ("1d", "regression"): ["minirocket", "one_nn"],
    ("1d", "dense"): ["minirocket", "one_nn"],
    ("2d", "classification"): ["svm", "one_nn"],
    ("2d", "multilabel"): ["one_nn"],
    ("2d", "regression"): ["svm", "one_nn"],
    ("2d", "dense"): ["one_nn"],
    ("tabular", "classification"): ["gradient_boosting", "one_nn"],
    ("tabular", "multilabel"): ["one_nn"],
    ("tabular", "regression"): ["gradient_boosting", "one_nn"],
}


def _toy(make_task: MakeTask, modality: str, task_type: str) -> Task:
    return make_task(task_type, modality, shape=SHAPES[modality])


def _nearest_training_targets(task: Task) -> np.ndarray:
    """1-NN computed directly: the targets of each test sample's nearest training sample."""
    train, test = task.train.X.reshape(len(task.train), -1), task.test.X.reshape(len(task.test), -1)
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(axis=-1)
    return task.train.y[distances.argmin(axis=1)]


def test_registered_baselines_and_their_info() -> None:
    assert BASELINES.names() == ["gradient_boosting", "minirocket", "one_nn", "svm"]
    assert [BASELINES.info(n).display_name for n in BASELINES.names()] == [
        "HistGB", "MiniRocket", "1-NN", "RBF SVM"]
    assert BASELINES.info("svm") == BaselineInfo(
        "RBF SVM", modalities=("2d",), task_types=("classification", "regression"))
    with pytest.raises(ValueError, match="baseline modalities .'3d',.: give one or more of"):
        BaselineInfo("x", modalities=("3d",), task_types=("regression",))
    with pytest.raises(ValueError, match="baseline task_types"):
        BaselineInfo("x", modalities=("2d",), task_types=())


@pytest.mark.parametrize(("modality", "task_type"), list(FIELD))
def test_field_baselines_per_modality_and_task_type(
    toy_task: MakeTask, modality: str, task_type: str
) -> None:
    assert field_baselines(_toy(toy_task, modality, task_type)) == FIELD[modality, task_type]


@pytest.mark.parametrize(("modality", "task_type"), list(FIELD))
def test_every_task_type_gets_the_one_form(
    toy_task: MakeTask, modality: str, task_type: str
) -> None:
    task = _toy(toy_task, modality, task_type)
    for name in FIELD[modality, task_type]:
        result = fit_baseline(name, task, seed=0)
        assert result.test.shape == (len(task.test), *task.output_shape)
        if task_type == "classification":
            np.testing.assert_allclose(result.test.sum(axis=1), 1.0)
        if task_type in ("classification", "multilabel"):
            assert ((result.test >= 0) & (result.test <= 1)).all()
            if name != "gradient_boosting":  # the others predict classes or labels: one-hot
                assert set(np.unique(result.test)) <= {0.0, 1.0}
        else:
            assert result.test.dtype == np.float32
        if name == "one_nn":
            expected = _nearest_training_targets(task)
            if task_type == "classification":
                expected = np.eye(task.num_outputs)[expected]
            np.testing.assert_array_equal(result.test, expected)


@pytest.mark.parametrize("task_type", ["multilabel", "dense"])
def test_minirocket_ridge_read_out_for_labels_and_fields(toy_task: MakeTask, task_type: str) -> None:
    from sktime.transformations.panel.rocket import MiniRocketMultivariate

    task = _toy(toy_task, "1d", task_type)
    result = fit_baseline("minirocket", task, seed=3)
    rocket = MiniRocketMultivariate(random_state=3).fit(task.train.X.astype(np.float64))

    def features(split: Split) -> np.ndarray:
        return np.asarray(rocket.transform(split.X.astype(np.float64)))

    alphas = np.logspace(-3, 3, 10)
    if task_type == "multilabel":
        ridge: Any = RidgeClassifierCV(alphas=alphas).fit(features(task.train), task.train.y)
    else:
        ridge = RidgeCV(alphas=alphas).fit(features(task.train), task.train.y.reshape(len(task.train), -1))
    expected = ridge.predict(features(task.test)).reshape(result.test.shape)
    np.testing.assert_allclose(result.test, expected, rtol=1e-5, atol=1e-5)
    assert result.params == {"alpha": ridge.alpha_}


@pytest.mark.parametrize(("name", "modality"), [("svm", "2d"), ("gradient_boosting", "tabular")])
def test_several_regression_targets_get_one_model_each(
    toy_task: MakeTask, name: str, modality: str
) -> None:
    task = _toy(toy_task, modality, "regression")

    def two_targets(split: Split) -> Split:
        return Split(split.X, np.hstack([split.y, -2 * split.y ** 2]))

    two = replace(task, num_outputs=2, train=two_targets(task.train), val=two_targets(task.val),
                  test=two_targets(task.test))
    result = fit_baseline(name, two, seed=0)
    assert result.test.shape == (len(two.test), 2) and result.test.dtype == np.float32
    if name == "svm":  # each column is an SVR on that target, with the chosen C and gamma
        X_tr, X_te = two.train.X.reshape(len(two.train), -1), two.test.X.reshape(len(two.test), -1)
        for k in range(2):
            column = SVR(**result.params).fit(X_tr, two.train.y[:, k]).predict(X_te)
            np.testing.assert_allclose(result.test[:, k], column, rtol=1e-5)


@pytest.mark.parametrize("name", ["gradient_boosting", "one_nn"])
def test_a_class_absent_from_training_gets_probability_zero(toy_task: MakeTask, name: str) -> None:
    task = _toy(toy_task, "tabular", "classification")
    seen = task.train.y != 2
    task = replace(task, train=Split(task.train.X[seen], task.train.y[seen]))
    result = fit_baseline(name, task, seed=0)
    assert result.test.shape == (len(task.test), 3)
    assert (result.test[:, 2] == 0).all() and (result.test[:, :2] > 0).any(axis=1).all()
    np.testing.assert_allclose(result.test.sum(axis=1), 1.0)


def test_unknown_baseline_is_one_line(toy_task: MakeTask) -> None:
    with pytest.raises(OrcaInputError) as exc:
        fit_baseline("knn", _toy(toy_task, "1d", "classification"), seed=0)
    assert str(exc.value) == (
        "unknown baseline 'knn': choose one of gradient_boosting, minirocket, one_nn, svm")


@pytest.mark.parametrize(("name", "modality", "task_type", "choices"), [
    ("svm", "1d", "classification", "minirocket, one_nn"),
    ("svm", "2d", "dense", "one_nn"),
    ("gradient_boosting", "tabular", "multilabel", "one_nn"),
])
def test_a_baseline_outside_its_field_is_refused(
    toy_task: MakeTask, name: str, modality: str, task_type: str, choices: str
) -> None:
    with pytest.raises(OrcaInputError, match=f"not to 'toy-{task_type}'.*choose one of {choices}$"):
        fit_baseline(name, _toy(toy_task, modality, task_type), seed=0)


def test_results_are_read_only(toy_task: MakeTask) -> None:
    result = fit_baseline("svm", _toy(toy_task, "2d", "classification"), seed=0)
    with pytest.raises(ValueError, match="read-only"):
        result.test[0, 0] = 0.5
    with pytest.raises(TypeError):
        result.params["C"] = 0.0  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        result.name = "other"  # type: ignore[misc]


def _training_mean(task: Task, seed: int) -> FittedBaseline:
    mean = task.train.y.mean(axis=0)
    return FittedBaseline(lambda X: np.tile(mean, (len(X), 1)).astype(np.float32))


def test_a_registered_baseline_joins_its_field_and_is_checked(toy_task: MakeTask) -> None:
    task = _toy(toy_task, "tabular", "regression")
    info = BaselineInfo("mean", modalities=("tabular",), task_types=("regression",))
    with BASELINES.registered("train_mean", _training_mean, info):
        assert field_baselines(task) == ["gradient_boosting", "train_mean", "one_nn"]
        result = fit_baseline("train_mean", task, seed=0)
        np.testing.assert_allclose(result.test, np.tile(task.train.y.mean(axis=0), (len(task.test), 1)))
        # it offers no refit: asked for one, it says so instead of tuning on validation rows
        with pytest.raises(OrcaInputError, match="'train_mean' cannot be refitted"):
            fit_baseline("train_mean", task, seed=0, refit=True)

    def wrong_shape(task: Task, seed: int) -> FittedBaseline:
        return FittedBaseline(lambda X: np.zeros(len(X), np.float32))

    with BASELINES.registered("flat", wrong_shape, info), \
            pytest.raises(ValueError, match=r"predicted shape \(24,\) on val; .* needs \(24, 1\)"):
        fit_baseline("flat", task, seed=0)
