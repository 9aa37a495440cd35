"""Every built-in task loads offline with the documented shapes, splits and normalisation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from orca_automl.errors import OrcaInputError
from orca_automl.tasks import TASKS, Task, load_task
from orca_automl.tasks._builtin import resample_series

# name: task type, modality, input shape, outputs, train + val rows, test rows, val share
EXPECTED: dict[str, tuple[str, str, tuple[int, ...], int, int, int, float]] = {
    "gunpoint": ("classification", "1d", (1, 150), 2, 50, 150, 0.2),
    "italy_power_demand": ("classification", "1d", (1, 24), 2, 67, 1029, 0.2),
    "basic_motions": ("classification", "1d", (6, 100), 4, 40, 40, 0.2),
    "japanese_vowels": ("classification", "1d", (12, 26), 9, 270, 370, 0.2),
    "tecator": ("regression", "1d", (1, 100), 1, 150, 43, 0.2),  # 22 repeats dropped
    "digits": ("classification", "2d", (1, 8, 8), 10, 1258, 539, 0.2),
    "breast_cancer": ("classification", "tabular", (30,), 2, 427, 142, 0.2),
    "diabetes": ("regression", "tabular", (10,), 1, 332, 110, 0.2),
    "burgers1d": ("dense", "1d", (1, 128), 1, 600, 200, 0.2),
}

_loaded: dict[tuple[str, int], Task] = {}


def task(name: str, seed: int = 0) -> Task:
    """Each (name, seed) built once per module: loading is the slow part of these tests.

    Generated data (burgers1d) goes to the private cache folder set up in tests/conftest.py.
    """
    if (name, seed) not in _loaded:
        _loaded[(name, seed)] = load_task(name, seed=seed)
    return _loaded[(name, seed)]


def row_hashes(t: Task, split: str) -> list[str]:
    X = getattr(t, split).X
    return [hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest() for r in X]


def test_registry_holds_exactly_the_documented_tasks() -> None:
    assert TASKS.names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_types_and_sizes(name: str) -> None:
    task_type, modality, shape, outputs, n_train, n_test, val_share = EXPECTED[name]
    t = task(name)
    assert (t.name, t.task_type, t.modality) == (name, task_type, modality)
    assert t.input_shape == shape and t.num_outputs == outputs
    assert len(t.train) + len(t.val) == n_train and len(t.test) == n_test
    assert len(t.val) == round(val_share * n_train)
    assert "\n" not in t.description and f"test {n_test}" in t.description
    for split in (t.train, t.val, t.test):
        assert split.X.dtype == np.float32 and split.X.shape[1:] == shape
        assert np.isfinite(split.X).all()
    if task_type == "classification":
        assert t.class_names is not None and len(t.class_names) == outputs
        for split in (t.train, t.val, t.test):
            assert split.y.dtype == np.int64 and split.y.ndim == 1
            assert split.y.min() >= 0 and split.y.max() < outputs
        assert set(t.train.y.tolist()) == set(range(outputs)), "every class must be trained on"
    else:
        assert t.class_names is None
        assert t.train.y.dtype == np.float32
        assert t.output_shape == (shape if task_type == "dense" else (outputs,))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_splits_are_disjoint(name: str) -> None:
    """All raw rows of these sets are distinct, so a shared hash means a leaked row."""
    t = task(name)
    hashes = [h for s in ("train", "val", "test") for h in row_hashes(t, s)]
    assert len(set(hashes)) == len(hashes)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inputs_normalised_with_train_statistics(name: str) -> None:
    t = task(name)
    axes = (0, *range(2, t.train.X.ndim))  # over samples and positions: per channel / feature
    assert np.allclose(t.train.X.mean(axis=axes), 0.0, atol=1e-4)
    assert np.allclose(t.train.X.std(axis=axes), 1.0, atol=1e-3)
    # per-sample z-normalisation (UCR) for series, except dense targets that need the level
    # and JapaneseVowels, whose speakers differ in level (see test_file_tasks)
    assert t.normalizer.per_sample == (t.modality == "1d" and t.task_type != "dense"
                                       and name != "japanese_vowels")


def test_japanese_vowels_keeps_the_level_that_tells_speakers_apart() -> None:
    """1-NN on the task as built scores what it scores on the raw resampled series (per
    channel statistics only change a channel's weight), not the 0.56 of per-sample z-norm."""
    from sklearn.neighbors import KNeighborsClassifier

    t = task("japanese_vowels")
    dev = t.development
    model = KNeighborsClassifier(1).fit(dev.X.reshape(len(dev), -1), dev.y)
    accuracy = (model.predict(t.test.X.reshape(len(t.test), -1)) == t.test.y).mean()
    assert accuracy > 0.9
    assert "standardised per channel only" in t.description


def test_test_split_statistics_are_not_refitted() -> None:
    t = task("breast_cancer")
    assert np.abs(t.test.X.mean(axis=0)).max() > 0.05
    assert np.abs(t.val.X.mean(axis=0)).max() > 0.05


def test_regression_targets_stay_in_original_units() -> None:
    from sklearn.datasets import load_diabetes

    t = task("diabetes")
    raw = load_diabetes(scaled=False)
    assert set(t.test.y.ravel().tolist()) <= set(raw.target.astype(np.float32).tolist())
    assert t.normalizer.y_mean is not None
    assert np.allclose(t.normalizer.y_mean, t.train.y.mean(axis=0), rtol=1e-5)
    scaled = t.normalizer.normalize_y(t.train.y)
    assert abs(float(scaled.mean())) < 1e-5 and abs(float(scaled.std()) - 1.0) < 1e-4
    assert np.allclose(t.normalizer.denormalize_y(scaled), t.train.y, atol=1e-3)


def test_class_names_keep_the_original_labels() -> None:
    assert task("breast_cancer").class_names == ("benign", "malignant")
    assert task("basic_motions").class_names == ("badminton", "running", "standing", "walking")


def raw_rows(t: Task, split: str) -> set[bytes]:
    """Rows in original units (undoing the affine normalisation), as hashable bytes."""
    n = t.normalizer
    X = getattr(t, split).X * n.x_std + n.x_mean
    return {r.tobytes() for r in np.round(X, 3).astype(np.float32)}


def test_seed_changes_only_the_validation_split() -> None:
    a, again, b = task("digits", 0), load_task("digits", seed=0), task("digits", 1)
    assert a.fingerprint() == again.fingerprint()
    assert np.array_equal(a.test.y, b.test.y), "test rows must not depend on the seed"
    assert raw_rows(a, "test") == raw_rows(b, "test")
    assert raw_rows(a, "val") != raw_rows(b, "val")
    assert raw_rows(a, "val") | raw_rows(a, "train") == raw_rows(b, "val") | raw_rows(b, "train")
    assert not np.allclose(a.normalizer.x_mean, b.normalizer.x_mean), "fitted on train only"


def test_val_fraction_override() -> None:
    t = load_task("gunpoint", val_fraction=0.2)
    assert len(t.val) == 10 and len(t.train) == 40


def test_resample_series_interpolates_linearly_per_channel() -> None:
    ramp = np.stack([np.linspace(0.0, 1.0, 5), np.linspace(3.0, -1.0, 5)])
    out = resample_series([ramp, ramp[:, ::2]], 9)
    assert out.shape == (2, 2, 9)
    assert np.allclose(out[0], np.stack([np.linspace(0, 1, 9), np.linspace(3, -1, 9)]))
    assert np.allclose(out[1], out[0])
    assert np.array_equal(resample_series([ramp], 5)[0], ramp)


def test_unknown_name_lists_known_tasks() -> None:
    with pytest.raises(OrcaInputError, match=r"unknown task 'gunpont'.*gunpoint"):
        load_task("gunpont")


def test_contradictory_task_type_or_target_for_builtin() -> None:
    with pytest.raises(OrcaInputError, match="classification task, not regression"):
        load_task("gunpoint", task_type="regression")
    with pytest.raises(OrcaInputError, match="target= applies to csv"):
        load_task("gunpoint", target="label")
