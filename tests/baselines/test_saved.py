"""Saved baselines: a folder of data (no pickle) that `load_model` and `orca-predict` serve,
refitted on load into the model that was scored, alone or as a bag of fold models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orca_automl.baselines import SavedBaseline, fit_baseline, save_baseline
from orca_automl.cycle import SavedEnsemble, load_model, save_ensemble
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Task, load_task


def raw(task: Task, X: np.ndarray) -> np.ndarray:
    """Inputs as a user hands them over: the task's normalisation undone (a per-sample
    z-normalised series normalises to itself again)."""
    return X * task.normalizer.x_std + task.normalizer.x_mean


@pytest.mark.parametrize(("task_name", "baseline"), [
    ("breast_cancer", "gradient_boosting"), ("breast_cancer", "one_nn"), ("digits", "svm"),
    ("gunpoint", "minirocket"), ("diabetes", "gradient_boosting"),
])
def test_a_saved_baseline_predicts_raw_inputs_as_the_fitted_one(
    tmp_path: Path, task_name: str, baseline: str
) -> None:
    task = load_task(task_name, seed=0)
    result = fit_baseline(baseline, task, seed=0)
    folder = save_baseline(result, task, 0, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["baseline.npz", "meta.json"]
    with np.load(folder / "baseline.npz", allow_pickle=False) as data:  # arrays only
        assert all(data[key].dtype != object for key in data.files)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["baseline"]["name"] == baseline and meta["baseline"]["params"] == dict(
        result.params)
    loaded = load_model(folder)
    assert isinstance(loaded, SavedBaseline)
    predictions = loaded.predictions(raw(task, task.test.X))
    assert np.allclose(predictions, result.test, atol=1e-6)
    assert (task.score(task.test.y, predictions).value
            == task.score(task.test.y, result.test).value)
    if task.task_type == "classification":
        assert (loaded.predict(raw(task, task.test.X)) == result.test.argmax(1)).all()


def test_a_bag_of_fold_baselines_averages_its_fold_models(tmp_path: Path) -> None:
    task = load_task("breast_cancer", seed=0)
    parts = [task.fold(i, 3, seed=0) for i in range(2)]
    results = [fit_baseline("gradient_boosting", part, seed=0) for part in parts]
    folders = [save_baseline(r, p, 0, tmp_path / f"fold-{i}")
               for i, (r, p) in enumerate(zip(results, parts, strict=True))]
    bag = load_model(save_ensemble(folders, tmp_path / "bag"))
    assert isinstance(bag, SavedEnsemble)
    expected = np.mean([r.test for r in results], axis=0)
    assert np.allclose(bag.predictions(raw(task, task.test.X)), expected, atol=1e-6)


def test_orca_predict_serves_a_saved_baseline(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from orca_automl.cli import predict_main

    task = load_task("breast_cancer", seed=0)
    folder = save_baseline(fit_baseline("one_nn", task, 0), task, 0, tmp_path / "model")
    np.save(tmp_path / "x.npy", raw(task, task.test.X[:5]))
    assert predict_main(["--model", str(folder), "--input", str(tmp_path / "x.npy")]) == 0
    lines = capsys.readouterr().out.split()
    names = task.class_names or ()
    expected = fit_baseline("one_nn", task, 0).test[:5].argmax(1)
    assert lines == [names[int(i)] if names else str(int(i)) for i in expected]


def test_a_baseline_that_refits_differently_is_refused(tmp_path: Path) -> None:
    task = load_task("breast_cancer", seed=0)
    folder = save_baseline(fit_baseline("one_nn", task, 0), task, 0, tmp_path / "model")
    with np.load(folder / "baseline.npz", allow_pickle=False) as data:
        arrays = dict(data)
    arrays["val_predictions"][:3] = arrays["val_predictions"][:3, ::-1]  # 3 samples flipped
    np.savez(folder / "baseline.npz", **arrays)
    with pytest.raises(OrcaInputError, match="predicts 3 of its 85 validation samples"):
        load_model(folder)


def test_a_broken_baseline_folder_gets_one_clear_line(tmp_path: Path) -> None:
    task = load_task("breast_cancer", seed=0)
    folder = save_baseline(fit_baseline("one_nn", task, 0), task, 0, tmp_path / "model")
    meta = json.loads((folder / "meta.json").read_text())
    meta["baseline"]["name"] = "../../somewhere"  # a name, never a path
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(OrcaInputError, match="not registered here"):
        load_model(folder)
    meta["baseline"]["name"] = "one_nn"
    (folder / "meta.json").write_text(json.dumps(meta))
    np.savez(folder / "baseline.npz", train_X=np.zeros((2, 30)))  # arrays missing
    with pytest.raises(OrcaInputError, match="is not a saved baseline's data"):
        load_model(folder)
    np.savez(folder / "baseline.npz", train_X=np.array([{"a": 1}], dtype=object))
    with pytest.raises(OrcaInputError, match="is not a saved baseline's data"):  # no pickle
        load_model(folder)
