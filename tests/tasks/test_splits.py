"""Seeded hold-out splits: stratified, every class kept for training, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from orca_automl.errors import OrcaInputError
from orca_automl.tasks._splits import fold_indices, holdout_indices


def test_stratified_holdout_keeps_class_shares_and_every_class() -> None:
    y = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 9 + ["rare"])
    keep, held = holdout_indices(y, 0.3, seed=0, stratify=True, what="val")
    assert len(held) == 30 and len(keep) == 70
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(100))
    counts = {c: int((y[held] == c).sum()) for c in ("a", "b", "c", "rare")}
    assert counts["a"] in (17, 18, 19) and counts["b"] in (8, 9, 10) and counts["c"] in (2, 3, 4)
    assert counts["rare"] == 0, "a class's last sample is never held out"


@pytest.mark.parametrize("seed", range(5))
def test_singleton_classes_stay_in_training_even_at_large_fractions(seed: int) -> None:
    y = np.array(["a"] * 10 + ["b", "c"])
    keep, held = holdout_indices(y, 0.5, seed=seed, stratify=True, what="val")
    assert len(held) == 6 and set(y[keep]) == {"a", "b", "c"}


def test_holdout_is_seeded() -> None:
    y = np.arange(50) % 2
    first = holdout_indices(y, 0.2, seed=1, stratify=True, what="val")
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            first, holdout_indices(y, 0.2, seed=1, stratify=True, what="val"), strict=True
        )
    )
    assert not np.array_equal(
        first[1], holdout_indices(y, 0.2, seed=2, stratify=True, what="val")[1]
    )
    keep, held = holdout_indices(np.linspace(0, 1, 50), 0.2, seed=1, stratify=False, what="val")
    assert len(held) == 10 and not set(keep) & set(held)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_fraction_must_be_a_proper_share(fraction: float) -> None:
    with pytest.raises(OrcaInputError, match="strictly between 0 and 1"):
        holdout_indices(np.arange(10) % 2, fraction, seed=0, stratify=True, what="val split")


def test_folds_are_disjoint_cover_every_row_and_keep_class_shares() -> None:
    y = np.array([0] * 30 + [1] * 15 + [2] * 5)
    folds = fold_indices(y, 5, seed=3, stratify=True, what="t")
    assert len(folds) == 5
    together = np.concatenate(folds)
    assert sorted(together.tolist()) == list(range(50))  # disjoint and complete
    for held in folds:
        assert len(held) == 10
        assert [int((y[held] == c).sum()) for c in (0, 1, 2)] == [6, 3, 1]
    assert all(np.array_equal(a, b) for a, b in zip(folds, fold_indices(y, 5, 3, stratify=True,
                                                                           what="t"), strict=True))
    other = fold_indices(y, 5, seed=4, stratify=True, what="t")
    assert not all(np.array_equal(a, b) for a, b in zip(folds, other, strict=True))


def test_too_few_samples_or_folds_are_one_line_errors() -> None:
    with pytest.raises(OrcaInputError, match="too few for 5 folds"):
        fold_indices(np.arange(9), 5, 0, stratify=False, what="t")
    with pytest.raises(OrcaInputError, match=">= 2"):
        fold_indices(np.arange(9), 1, 0, stratify=False, what="t")


def test_a_task_fold_trains_on_the_rest_of_the_development_data_and_keeps_test(toy_task) -> None:  # type: ignore[no-untyped-def]
    task = toy_task(n=40)
    dev = task.development
    assert len(dev) == len(task.train) + len(task.val)
    folds = task.fold_indices(4, seed=0)
    seen = []
    for i in range(4):
        part = task.fold(i, 4, seed=0)
        assert part.test is task.test and part.normalizer is task.normalizer
        assert len(part.train) + len(part.val) == len(dev)
        np.testing.assert_array_equal(part.val.X, dev.X[folds[i]])
        test_rows = {r.tobytes() for r in task.test.X}
        assert not test_rows & {r.tobytes() for r in part.train.X}
        seen.extend(folds[i].tolist())
    assert sorted(seen) == list(range(len(dev)))
