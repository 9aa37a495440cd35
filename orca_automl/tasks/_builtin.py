"""Built-in tasks: real data sets shipped inside installed packages, plus a generated PDE task.

Everything here works offline. Official test splits are kept (UCR/UEA archives via sktime);
where a data set has none, a test split is carved with a fixed seed (see `_build`). The
validation split always comes from the training data, with the task seed. UCR training sets
are tiny (40-67 series): those tasks hold out only 20% for validation, since fewer training
series cost more than a noisier validation score (docs/benchmarks/findings.md), and with under
50 validation samples the refine stage keeps the final checkpoint instead of selecting on them.

Register a new task with `@TASKS.register("name")` on a builder `(seed, val_fraction=None)`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from orca_automl.registry import Registry
from orca_automl.tasks._base import Task
from orca_automl.tasks._build import RawData, build_task
from orca_automl.tasks._pde import BURGERS_DEFAULTS, burgers_dataset


class TaskBuilder(Protocol):
    """Builds a task; `seed` chooses the validation split, `val_fraction` overrides its size."""

    def __call__(self, seed: int, val_fraction: float | None = None) -> Task: ...


TASKS: Registry[TaskBuilder, None] = Registry("task")

#: Validation share of the tiny UCR/UEA training sets (see the module docstring).
TINY_VAL_FRACTION = 0.2


def _archive(
    name: str, loader: str, intro: str, seed: int, val_fraction: float | None, default_val: float
) -> Task:
    """An equal-length UCR/UEA/TSER problem with its official test split.

    Training rows that repeat a test row or an earlier training row are dropped (Tecator
    repeats 22 spectra, 8 of them across the official split): a copy in train or validation
    would leak into the score. The test split stays as published, so scores stay comparable.
    """
    from sktime import datasets

    load = getattr(datasets, loader)
    X_train, y_train = load(split="train", return_type="numpy3D")
    X_test, y_test = load(split="test", return_type="numpy3D")
    keep = _first_occurrences(X_train, X_test)
    if not keep.all():
        intro += f" ({int((~keep).sum())} training copies of repeated series dropped)"
    return build_task(
        name,
        RawData(X_train[keep], y_train[keep], X_test=X_test, y_test=y_test),
        modality="1d",
        source=f"sktime.datasets.{loader}",
        intro=intro,
        seed=seed,
        val_fraction=val_fraction,
        default_val_fraction=default_val,
    )


def _first_occurrences(X: np.ndarray, X_other: np.ndarray) -> np.ndarray:
    """Mask of the rows of X that are neither in X_other nor repeats of an earlier row of X."""
    seen = {r.tobytes() for r in np.ascontiguousarray(X_other)}
    keep = np.zeros(len(X), dtype=bool)
    for i, r in enumerate(np.ascontiguousarray(X)):
        key = r.tobytes()
        keep[i] = key not in seen
        seen.add(key)
    return keep


@TASKS.register("gunpoint")
def gunpoint(seed: int, val_fraction: float | None = None) -> Task:
    return _archive(
        "gunpoint",
        "load_gunpoint",
        "GunPoint (UCR, via sktime): gun draw vs. pointing from the hand's x-position",
        seed,
        val_fraction,
        TINY_VAL_FRACTION,
    )


@TASKS.register("italy_power_demand")
def italy_power_demand(seed: int, val_fraction: float | None = None) -> Task:
    return _archive(
        "italy_power_demand",
        "load_italy_power_demand",
        "ItalyPowerDemand (UCR, via sktime): winter vs. summer half-year from 24 hourly loads",
        seed,
        val_fraction,
        TINY_VAL_FRACTION,
    )


@TASKS.register("basic_motions")
def basic_motions(seed: int, val_fraction: float | None = None) -> Task:
    return _archive(
        "basic_motions",
        "load_basic_motions",
        "BasicMotions (UEA, via sktime): activity (4) from 3-axis accelerometer + gyroscope",
        seed,
        val_fraction,
        TINY_VAL_FRACTION,
    )


def resample_series(series: list[np.ndarray], length: int) -> np.ndarray:
    """Series of shape (C, L_i) to one (N, C, length) array, linearly interpolated per channel.

    Each series is stretched or squeezed over the same [0, 1] time axis, so its start and end
    stay aligned whatever its original length.
    """
    grid = np.linspace(0.0, 1.0, length)
    out = np.empty((len(series), series[0].shape[0], length))
    for i, s in enumerate(series):
        own = np.linspace(0.0, 1.0, s.shape[1])
        out[i] = [np.interp(grid, own, channel) for channel in s]
    return out


@TASKS.register("japanese_vowels")
def japanese_vowels(seed: int, val_fraction: float | None = None) -> Task:
    """Unequal lengths (7-29 frames) are resampled to the longest training series."""
    from sktime.datasets import load_japanese_vowels

    nested = {s: load_japanese_vowels(split=s) for s in ("train", "test")}
    series = {
        s: [np.stack([np.asarray(cell, dtype=np.float64) for cell in row]) for row in X.to_numpy()]
        for s, (X, _) in nested.items()
    }
    length = max(x.shape[1] for x in series["train"])
    return build_task(
        "japanese_vowels",
        RawData(
            resample_series(series["train"], length),
            nested["train"][1],
            X_test=resample_series(series["test"], length),
            y_test=nested["test"][1],
        ),
        modality="1d",
        source="sktime.datasets.load_japanese_vowels",
        intro=(
            "JapaneseVowels (UEA, via sktime): speaker (9) from 12 LPC cepstra of an uttered "
            f"vowel, 7-29 frames resampled linearly to {length}"
        ),
        seed=seed,
        val_fraction=val_fraction,
        extras={"resampled_length": length},
    )


@TASKS.register("tecator")
def tecator(seed: int, val_fraction: float | None = None) -> Task:
    return _archive(
        "tecator",
        "load_tecator",
        "Tecator (TSER, via sktime): meat fat content (%) from a 100-point NIR absorbance spectrum",
        seed,
        val_fraction,
        0.2,
    )


@TASKS.register("digits")
def digits(seed: int, val_fraction: float | None = None) -> Task:
    from sklearn.datasets import load_digits

    data = load_digits()
    return build_task(
        "digits",
        RawData(data.images[:, None], data.target),
        modality="2d",
        source="sklearn.datasets.load_digits",
        intro="digits (scikit-learn, UCI): handwritten digit 0-9 from an 8x8 greyscale image",
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=0.3,
    )


@TASKS.register("breast_cancer")
def breast_cancer(seed: int, val_fraction: float | None = None) -> Task:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return build_task(
        "breast_cancer",
        RawData(data.data, data.target_names[data.target]),
        modality="tabular",
        source="sklearn.datasets.load_breast_cancer",
        intro="breast cancer Wisconsin (scikit-learn): malignant vs. benign, 30 nucleus features",
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=0.25,
    )


@TASKS.register("diabetes")
def diabetes(seed: int, val_fraction: float | None = None) -> Task:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    return build_task(
        "diabetes",
        RawData(data.data, data.target),
        modality="tabular",
        source="sklearn.datasets.load_diabetes",
        intro="diabetes (scikit-learn): disease progression after one year from 10 baseline values",
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=0.25,
    )


BURGERS_TRAIN, BURGERS_TEST = 600, 200


@TASKS.register("burgers1d")
def burgers1d(seed: int, val_fraction: float | None = None) -> Task:
    """Generated once with data seed 0 (cached): the same train/test samples for every seed."""
    u0, u_t = burgers_dataset(BURGERS_TRAIN + BURGERS_TEST, seed=0)
    X, y = u0[:, None], u_t[:, None]
    p = BURGERS_DEFAULTS
    return build_task(
        "burgers1d",
        RawData(
            X[:BURGERS_TRAIN],
            y[:BURGERS_TRAIN],
            X_test=X[BURGERS_TRAIN:],
            y_test=y[BURGERS_TRAIN:],
        ),
        modality="1d",
        source="orca_automl.tasks._pde",
        intro=(
            f"viscous Burgers (generated, nu {p['nu']}, periodic {p['grid']}-point grid): "
            f"u(x, {p['t_final']}) from u(x, 0), random smooth initial states"
        ),
        seed=seed,
        val_fraction=val_fraction,
    )
