"""User data files (.npz, .csv, .parquet, folders): layouts, inference, splits and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orca_automl.errors import OrcaInputError
from orca_automl.tasks import TableEncoding, load_task
from orca_automl.tasks._build import _one_nn_leave_one_out, choose_per_sample

RNG = np.random.default_rng(0)


def save_npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def blobs(n: int, classes: int = 3, features: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Tabular classification data whose class shifts the mean: labels are learnable."""
    y = np.arange(n) % classes
    return RNG.normal(size=(n, features)) + 3 * y[:, None], y


def people(n: int, offset: int = 0) -> pd.DataFrame:
    """A table with a numeric, a categorical and a string-label column."""
    i = np.arange(offset, offset + n)
    return pd.DataFrame(
        {
            "age": 20.0 + i % 50,
            "city": np.array(["Oslo", "Rome", "Lima"])[i % 3],
            "label": np.array(["cat", "dog"])[i % 2],
        }
    )


# --- .npz --------------------------------------------------------------------------------


def test_npz_without_val_or_test_carves_both(tmp_path: Path) -> None:
    X, y = blobs(200)
    t = load_task(str(save_npz(tmp_path / "d.npz", X_train=X, y_train=y)), seed=5)
    assert (t.name, t.task_type, t.modality, t.num_outputs) == ("d", "classification", "tabular", 3)
    assert (len(t.train), len(t.val), len(t.test)) == (128, 32, 40)
    assert "test: 20% held out" in t.description and "val: 20% held out" in t.description
    assert np.allclose(t.train.X.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(t.train.X.std(axis=0), 1, atol=1e-4)
    for split in (t.train, t.val, t.test):  # stratified: class shares stay equal
        assert np.allclose(np.bincount(split.y) / len(split), 1 / 3, atol=0.03)
    again = load_task(str(tmp_path / "d.npz"), seed=5)
    assert again.fingerprint() == t.fingerprint()
    other = load_task(str(tmp_path / "d.npz"), seed=6)
    assert other.fingerprint() != t.fingerprint()
    assert np.array_equal(other.test.y, t.test.y)


def test_npz_with_val_and_test_uses_them_as_given(tmp_path: Path) -> None:
    (X, y), (Xv, yv), (Xt, yt) = blobs(60), blobs(15), blobs(20)
    path = save_npz(
        tmp_path / "d.npz", X_train=X, y_train=y, X_val=Xv, y_val=yv, X_test=Xt, y_test=yt
    )
    t = load_task(str(path), val_fraction=0.5)  # nothing to carve: the fraction is unused
    assert (len(t.train), len(t.val), len(t.test)) == (60, 15, 20)
    assert np.allclose(t.val.X, t.normalizer.normalize_x(Xv))
    assert np.array_equal(t.test.y, yt)
    assert np.allclose(t.normalizer.x_mean, X.mean(axis=0), atol=1e-5)
    assert "held out" not in t.description


def waves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sines (class 0) and squares (class 1) at random phases, each series scaled and shifted
    at random: the class lies in the shape, the level and amplitude are noise."""
    y = np.arange(n) % 2
    t = np.linspace(0, 4 * np.pi, 60)[None, :] + rng.uniform(0, 2 * np.pi, size=(n, 1))
    shape = np.where(y[:, None] == 0, np.sin(t), np.sign(np.sin(t)))
    X = shape * rng.uniform(0.2, 5, size=(n, 1)) + rng.uniform(-10, 10, size=(n, 1))
    return X[:, None, :] + 0.05 * rng.normal(size=(n, 1, 60)), y


def test_npz_series_with_string_labels(tmp_path: Path) -> None:
    X, labels = waves(40, np.random.default_rng(1))
    y = np.array(["walk", "run"])[labels]
    t = load_task(str(save_npz(tmp_path / "s.npz", X_train=X, y_train=y)))
    assert (t.modality, t.input_shape, t.class_names) == ("1d", (1, 60), ("run", "walk"))
    assert t.normalizer.per_sample, t.description
    assert np.allclose(t.train.X.mean(axis=2), 0, atol=1e-4), "each series z-normalised"
    assert "z-normalised one by one (1-NN leave-one-out accuracy" in t.description


def test_series_whose_class_is_their_level_are_not_z_normalised_one_by_one(
    tmp_path: Path,
) -> None:
    """Two channels of the same noisy shape; the class is channel 0's level. Per-sample
    z-normalisation would erase it (1-NN leave-one-out near chance), so it is not applied."""
    rng = np.random.default_rng(2)
    y = np.arange(60) % 2
    X = np.sin(np.linspace(0, 6, 40))[None, None, :] + 0.3 * rng.normal(size=(60, 2, 40))
    X[:, 0] += 1.5 * y[:, None]
    t = load_task(str(save_npz(tmp_path / "lv.npz", X_train=X, y_train=y)))
    assert not t.normalizer.per_sample, t.description
    assert "standardised per channel only" in t.description
    means = t.train.X[:, 0].mean(axis=1)
    assert means[t.train.y == 1].mean() - means[t.train.y == 0].mean() > 1, "levels kept"
    # the dense and image cases never compare: no per-sample normalisation there at all
    assert choose_per_sample("2d", "classification", X[:, :, None], y) == (False, ())
    assert choose_per_sample("1d", "dense", X, X) == (False, ())


@pytest.mark.parametrize(("more_errors", "per_sample"), [(1, True), (10, False)])
def test_the_convention_yields_only_to_a_difference_beyond_noise(
    monkeypatch: pytest.MonkeyPatch, more_errors: int, per_sample: bool
) -> None:
    """40 rows, per-sample wrong on `more_errors` rows where per-channel is right, equal
    elsewhere. One row: mean difference 0.025, standard error 0.025, 0.025 < 1.645 x 0.025:
    kept. Ten: mean 0.25, standard error sqrt(7.5 / 39 / 40) = 0.069, 0.25 > 0.114: yields."""
    import orca_automl.tasks._build as build

    def scored(X: np.ndarray, y: np.ndarray, task_type: str) -> tuple[float, np.ndarray]:
        z_normalised = bool(np.allclose(X.mean(axis=2), 0, atol=1e-4))  # one by one
        losses = np.zeros(40)
        losses[:more_errors] = 1.0 if z_normalised else 0.0
        return 1 - losses.mean(), losses

    monkeypatch.setattr(build, "_one_nn_leave_one_out", scored)
    X = RNG.normal(size=(40, 1, 10)) + 5
    assert build.choose_per_sample("1d", "classification", X, np.arange(40) % 2)[0] == per_sample


@pytest.mark.parametrize("task_type", ["classification", "regression"])
def test_leave_one_out_one_nn_matches_scikit_learn(task_type: str) -> None:
    from sklearn.metrics import r2_score
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3, 20))  # > one 256-row chunk of the distance matrix
    y = (X[:, 0, :5].sum(axis=1) > 0).astype(np.int64) if task_type == "classification" \
        else X[:, 1, :4].sum(axis=1)
    model = KNeighborsClassifier(1) if task_type == "classification" else KNeighborsRegressor(1)
    predicted = cross_val_predict(model, X.reshape(300, -1), y, cv=LeaveOneOut())
    expected = (predicted == y).mean() if task_type == "classification" else r2_score(y, predicted)
    score, losses = _one_nn_leave_one_out(X, y, task_type)
    assert score == pytest.approx(expected, abs=1e-12)
    errors = predicted != y if task_type == "classification" else (predicted - y) ** 2
    np.testing.assert_allclose(losses, errors, atol=1e-12)


def test_npz_images_with_dense_targets(tmp_path: Path) -> None:
    X = RNG.normal(size=(30, 3, 6, 6))
    y = 100 + 10 * X[:, :1] ** 2
    t = load_task(str(save_npz(tmp_path / "img.npz", X_train=X, y_train=y)))
    assert (t.task_type, t.modality, t.output_shape) == ("dense", "2d", (1, 6, 6))
    assert t.train.y.min() >= 100, "targets stay in original units"
    assert t.normalizer.y_mean is not None and t.normalizer.y_mean.shape == (1, 1, 1)
    assert not t.normalizer.per_sample


def test_npz_multilabel_and_regression_inference(tmp_path: Path) -> None:
    X = RNG.normal(size=(50, 5))
    multi = (RNG.random(size=(50, 3)) > 0.5).astype(np.int64)
    t = load_task(str(save_npz(tmp_path / "m.npz", X_train=X, y_train=multi)))
    assert (t.task_type, t.num_outputs) == ("multilabel", 3) and t.train.y.dtype == np.float32
    r = load_task(str(save_npz(tmp_path / "r.npz", X_train=X, y_train=X[:, 0] * 2.5)))
    assert (r.task_type, r.output_shape) == ("regression", (1,))


def test_explicit_task_type_overrides_inference(tmp_path: Path) -> None:
    X, y = blobs(40, classes=2)
    path = save_npz(tmp_path / "f.npz", X_train=X, y_train=y.astype(np.float64))
    assert load_task(str(path)).task_type == "regression"  # float targets: never guessed
    t = load_task(str(path), task_type="classification")
    assert t.class_names == ("0", "1") and t.train.y.dtype == np.int64


def test_dense_series_targets_without_channel_axis(tmp_path: Path) -> None:
    X = RNG.normal(size=(30, 1, 16))
    path = save_npz(tmp_path / "p.npz", X_train=X, y_train=X[:, 0] * 2)
    assert load_task(str(path)).task_type == "regression"  # (N, L): ambiguous, not guessed
    t = load_task(str(path), task_type="dense")
    assert t.output_shape == (1, 16)


# --- tables ------------------------------------------------------------------------------


def test_csv_with_string_labels_and_a_categorical_column(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    people(100).to_csv(path, index=False)
    t = load_task(str(path), target="label")
    assert (t.task_type, t.modality, t.class_names) == ("classification", "tabular", ("cat", "dog"))
    assert t.input_shape == (4,)  # age + one-hot Lima, Oslo, Rome
    saved = t.extras["table_encoding"]
    assert isinstance(saved, dict)
    encoding = TableEncoding.from_dict(saved)
    assert encoding.feature_names == ("age", "city=Lima", "city=Oslo", "city=Rome")
    raw = encoding.transform(people(3), source="new rows")
    assert raw.tolist() == [[20, 0, 1, 0], [21, 0, 0, 1], [22, 1, 0, 0]]
    assert "target column 'label'" in t.description


def test_csv_default_target_is_last_column_or_named_target(tmp_path: Path) -> None:
    people(60).to_csv(tmp_path / "last.csv", index=False)
    assert load_task(str(tmp_path / "last.csv")).class_names == ("cat", "dog")
    df = people(60).rename(columns={"age": "target"})
    df.to_csv(tmp_path / "named.csv", index=False)
    assert load_task(str(tmp_path / "named.csv")).task_type == "regression"  # float ages


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    people(80).to_parquet(path)
    t = load_task(str(path), target="label")
    assert t.num_outputs == 2 and len(t.train) + len(t.val) + len(t.test) == 80


def test_folder_of_csv_files_encodes_with_train_categories_only(tmp_path: Path) -> None:
    people(60).to_csv(tmp_path / "train.csv", index=False)
    test = people(12, offset=60)
    test.loc[0, "city"] = "Paris"  # unseen in training: all zeros in the one-hot group
    test.to_csv(tmp_path / "test.csv", index=False)
    t = load_task(str(tmp_path), target="label")
    assert t.name == tmp_path.name and len(t.test) == 12 and len(t.val) == 12
    raw_test = t.test.X * t.normalizer.x_std + t.normalizer.x_mean
    assert np.allclose(raw_test[0, 1:], 0, atol=1e-5) and np.allclose(raw_test[1:, 1:].sum(1), 1)


def test_folder_with_data_npz(tmp_path: Path) -> None:
    X, y = blobs(50)
    save_npz(tmp_path / "data.npz", X_train=X, y_train=y)
    assert load_task(str(tmp_path)).num_outputs == 3


# --- bad input -----------------------------------------------------------------------------


def bad(spec: str | Path, match: str, **kwargs: Any) -> None:
    with pytest.raises(OrcaInputError, match=match) as info:
        load_task(str(spec), **kwargs)
    assert "\n" not in str(info.value), "errors are one line"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    bad(tmp_path / "nope.npz", "nope.npz: no such file")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    bad(tmp_path / "junk.npz", "junk.npz: cannot read it as .npz")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    bad(tmp_path / "junk.parquet", "junk.parquet: cannot read it as a table")
    (tmp_path / "d.txt").write_text("1,2")
    bad(tmp_path / "d.txt", "unsupported file type '.txt'")
    (tmp_path / "empty").mkdir()
    bad(tmp_path / "empty", "neither data.npz nor train.csv")


def test_missing_arrays_and_columns(tmp_path: Path) -> None:
    X, y = blobs(30)
    bad(save_npz(tmp_path / "a.npz", X_train=X), r"missing arrays \['y_train'\]")
    bad(save_npz(tmp_path / "b.npz", X_train=X, y_train=y, X_valid=X), "unexpected arrays")
    bad(save_npz(tmp_path / "c.npz", X_train=X, y_train=y, X_val=X), "X_val is given without y_val")
    people(30).to_csv(tmp_path / "p.csv", index=False)
    bad(tmp_path / "p.csv", "no target column 'species'", target="species")


def test_nan_and_inf_are_refused_naming_split_and_count(tmp_path: Path) -> None:
    X, y = blobs(30)
    Xt = X.copy()
    Xt[:3, 0] = np.nan
    Xt[5, 1] = np.inf
    bad(
        save_npz(tmp_path / "a.npz", X_train=X, y_train=y, X_test=Xt, y_test=y),
        "X_test has 4 NaN or infinite values",
    )
    yf = X[:, 0].copy()
    yf[7] = np.nan
    bad(save_npz(tmp_path / "b.npz", X_train=X, y_train=yf), "y_train has 1 NaN")
    df = people(30)
    df.loc[[2, 4], "age"] = np.nan
    df.to_csv(tmp_path / "p.csv", index=False)
    bad(tmp_path / "p.csv", r"missing \(NaN\) values in columns \{'age': 2\}")


def test_mismatched_lengths_and_shapes(tmp_path: Path) -> None:
    X, y = blobs(30)
    bad(
        save_npz(tmp_path / "a.npz", X_train=X, y_train=y[:-2]),
        "X_train has 30 rows but y_train has 28",
    )
    bad(
        save_npz(tmp_path / "b.npz", X_train=X, y_train=y, X_test=X[:, :3], y_test=y),
        r"X_test has per-sample shape \(3,\) but X_train has \(4,\)",
    )
    bad(
        save_npz(tmp_path / "c.npz", X_train=X[:, :, None, None, None], y_train=y),
        "give \\(N, F\\) features",
    )


def test_bad_labels(tmp_path: Path) -> None:
    X, y = blobs(30)
    bad(
        save_npz(tmp_path / "a.npz", X_train=X, y_train=y, X_test=X[:5], y_test=y[:5] + 7),
        r"y_test has classes \[7, 8, 9\] absent from y_train",
    )
    bad(save_npz(tmp_path / "b.npz", X_train=X, y_train=np.zeros(30, int)), "only 1 class")
    bad(
        save_npz(tmp_path / "c.npz", X_train=X, y_train=X[:, 0]),
        "does not fit task type 'classification'",
        task_type="classification",
    )
    bad(
        save_npz(tmp_path / "d.npz", X_train=X, y_train=y),
        "unknown task type 'clasification'",
        task_type="clasification",
    )
    bad(save_npz(tmp_path / "e.npz", X_train=X[:3], y_train=y[:3]), "too few samples")
