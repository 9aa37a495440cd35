"""Every registered baseline on small real tasks, through the same checks: the one prediction
form, its test metric against a direct scikit-learn/sktime computation, hyperparameters chosen
without the test labels, and repeatable results for a seed."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import RidgeClassifierCV
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.svm import SVC

from orca_automl.baselines import BASELINES, BaselineResult, field_baselines, fit_baseline
from orca_automl.tasks import Split, Task, load_task, metric_for

#: (task, baseline): each built-in baseline on the real tasks of its field.
CASES = [
    ("gunpoint", "minirocket"), ("gunpoint", "one_nn"),
    ("digits", "svm"), ("digits", "one_nn"),
    ("breast_cancer", "gradient_boosting"), ("breast_cancer", "one_nn"),
    ("diabetes", "gradient_boosting"), ("diabetes", "one_nn"),
]
SEED = 0


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {name: load_task(name, seed=SEED) for name in dict(CASES)}


@pytest.fixture(scope="module")
def results(tasks: dict[str, Task]) -> dict[tuple[str, str], BaselineResult]:
    """One fit per case, shared by the checks below."""
    return {(t, b): fit_baseline(b, tasks[t], SEED) for t, b in CASES}


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def _score(task: Task, y: np.ndarray, pred: np.ndarray) -> float:
    """The task's metric on hard predictions, computed directly."""
    if task.task_type == "classification":
        return float(accuracy_score(y, pred))
    return float(r2_score(y.ravel(), pred))


def _grid_choice(task: Task, make: Any, grid: dict[str, list[Any]]) -> tuple[float, dict[str, Any]]:
    """Fit on train per grid point, keep the first best on validation, score it on test."""
    X_tr, X_va, X_te = (_flat(s.X) for s in (task.train, task.val, task.test))
    y_tr = task.train.y.ravel()
    best_val, best = -np.inf, None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        model = make(**params).fit(X_tr, y_tr)
        val = _score(task, task.val.y, model.predict(X_va))
        if val > best_val:
            best_val, best = val, (model, params)
    assert best is not None
    return _score(task, task.test.y, best[0].predict(X_te)), best[1]


def reference(name: str, task: Task) -> tuple[float, dict[str, Any]]:
    """(test metric, chosen hyperparameters) of the method, computed here from its recipe."""
    classes = task.task_type == "classification"
    if name == "minirocket":
        from sktime.transformations.panel.rocket import MiniRocketMultivariate

        rocket = MiniRocketMultivariate(random_state=SEED).fit(task.train.X.astype(np.float64))
        ridge = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(
            rocket.transform(task.train.X.astype(np.float64)), task.train.y)
        pred = ridge.predict(rocket.transform(task.test.X.astype(np.float64)))
        return _score(task, task.test.y, pred), {"alpha": ridge.alpha_}
    if name == "svm":
        return _grid_choice(task, SVC, {"C": [1.0, 10.0, 100.0], "gamma": ["scale", 1e-2, 1e-3]})
    if name == "gradient_boosting":
        boost = HistGradientBoostingClassifier if classes else HistGradientBoostingRegressor
        return _grid_choice(task, lambda **kw: boost(random_state=SEED, **kw),
                            {"learning_rate": [0.03, 0.1, 0.3], "max_leaf_nodes": [7, 15, 31]})
    assert name == "one_nn"
    knn = KNeighborsClassifier(1) if classes else KNeighborsRegressor(1)
    knn.fit(_flat(task.train.X), task.train.y.ravel())
    return _score(task, task.test.y, knn.predict(_flat(task.test.X))), {}


def test_every_registered_baseline_is_checked(tasks: dict[str, Task]) -> None:
    assert {b for _, b in CASES} == set(BASELINES.names())
    for name, task in tasks.items():
        assert field_baselines(task) == [b for t, b in CASES if t == name]


@pytest.mark.parametrize(("task_name", "name"), CASES)
def test_predictions_have_the_one_form(
    tasks: dict[str, Task], results: dict[tuple[str, str], BaselineResult], task_name: str,
    name: str,
) -> None:
    task, result = tasks[task_name], results[task_name, name]
    assert result.name == name and result.fit_seconds > 0
    for split, predictions in ((task.val, result.val), (task.test, result.test)):
        assert predictions.shape == (len(split), task.num_outputs)
        assert np.isfinite(predictions).all() and not predictions.flags.writeable
        if task.task_type == "classification":
            assert ((predictions >= 0) & (predictions <= 1)).all()
            np.testing.assert_allclose(predictions.sum(axis=1), 1.0)
        else:
            assert predictions.dtype == np.float32  # values in the task's units, as to_predictions


@pytest.mark.parametrize(("task_name", "name"), CASES)
def test_test_metric_equals_a_direct_computation(
    tasks: dict[str, Task], results: dict[tuple[str, str], BaselineResult], task_name: str,
    name: str,
) -> None:
    task, result = tasks[task_name], results[task_name, name]
    value = metric_for(task.task_type)(task.test.y, result.test)
    expected, params = reference(name, task)
    assert value == pytest.approx(expected, abs=1e-6)  # r2 on float32 values vs on float64
    assert dict(result.params) == params


@pytest.mark.parametrize(("task_name", "name"), CASES)
def test_hyperparameters_are_chosen_without_the_test_labels(
    tasks: dict[str, Task], results: dict[tuple[str, str], BaselineResult], task_name: str,
    name: str,
) -> None:
    task = tasks[task_name]
    shuffled = np.random.default_rng(1).permutation(task.test.y)
    assert not np.array_equal(shuffled, task.test.y)
    other = fit_baseline(name, replace(task, test=Split(task.test.X, shuffled)), SEED)
    assert dict(other.params) == dict(results[task_name, name].params)
    np.testing.assert_array_equal(other.val, results[task_name, name].val)
    np.testing.assert_array_equal(other.test, results[task_name, name].test)


@pytest.mark.parametrize(("task_name", "name"), CASES)
def test_results_repeat_for_a_seed(
    tasks: dict[str, Task], results: dict[tuple[str, str], BaselineResult], task_name: str,
    name: str,
) -> None:
    again = fit_baseline(name, tasks[task_name], SEED)
    first = results[task_name, name]
    assert dict(again.params) == dict(first.params)
    np.testing.assert_array_equal(again.val, first.val)
    np.testing.assert_array_equal(again.test, first.test)


def refit_reference(name: str, task: Task, params: dict[str, Any]) -> float:
    """Test metric of the method with `params` fitted on training + validation data,
    computed here (MiniRocket and 1-NN choose nothing on validation: their own recipe)."""
    dev = task.refit()
    if name in ("minirocket", "one_nn"):
        return reference(name, dev)[0]
    X, y = _flat(dev.train.X), dev.train.y.ravel()
    if name == "svm":
        model = SVC(**params).fit(X, y)
    else:
        boost = (HistGradientBoostingClassifier if task.task_type == "classification"
                 else HistGradientBoostingRegressor)
        model = boost(random_state=SEED, **params).fit(X, y)
    return _score(task, task.test.y, model.predict(_flat(task.test.X)))


@pytest.mark.parametrize(("task_name", "name"), CASES)
def test_refit_fits_the_chosen_hyperparameters_on_training_and_validation_data(
    tasks: dict[str, Task], results: dict[tuple[str, str], BaselineResult], task_name: str,
    name: str,
) -> None:
    task, first = tasks[task_name], results[task_name, name]
    refitted = fit_baseline(name, task, SEED, refit=True)
    assert dict(refitted.params) == dict(first.params)
    np.testing.assert_array_equal(refitted.val, first.val)  # validation scores the train fit
    value = metric_for(task.task_type)(task.test.y, refitted.test)
    assert value == pytest.approx(refit_reference(name, task, dict(first.params)), abs=1e-6)
