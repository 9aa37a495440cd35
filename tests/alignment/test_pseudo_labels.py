"""k-means pseudo-labels for regression, dense and multilabel targets."""

from __future__ import annotations

import numpy as np
import pytest

from orca_automl.alignment import pseudo_labels
from orca_automl.errors import OrcaInputError


def test_well_separated_targets_are_recovered() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), 20)
    targets = (groups[:, None] * 10.0 + rng.normal(size=(60, 2))).astype(np.float32)
    labels = pseudo_labels(targets, k=3)
    assert labels.dtype == np.int64 and labels.shape == (60,)
    # Same partition up to renaming: each true group maps to exactly one cluster.
    assert all(len(set(labels[groups == g])) == 1 for g in range(3))
    assert len(set(labels)) == 3
    np.testing.assert_array_equal(pseudo_labels(targets, k=3), labels)


def test_dense_targets_are_flattened_per_sample() -> None:
    rng = np.random.default_rng(1)
    targets = rng.normal(size=(30, 2, 4, 4)).astype(np.float32)
    targets[:15] += 5.0
    labels = pseudo_labels(targets, k=2)
    assert labels.shape == (30,) and len(set(labels[:15])) == 1 and len(set(labels[15:])) == 1


def test_k_is_capped_by_the_distinct_rows() -> None:
    multilabel = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    labels = pseudo_labels(multilabel, k=10)
    assert sorted(set(labels)) == [0, 1] and labels[0] == labels[2] != labels[1]
    assert pseudo_labels(np.ones(7, dtype=np.float32)).tolist() == [0] * 7


@pytest.mark.parametrize(
    ("targets", "k", "match"),
    [
        (np.array([[np.nan], [1.0]]), 2, "NaN"),
        (np.zeros((3, 1)), 0, "k must be"),
        (np.zeros((0, 2)), 2, "at least one"),
    ],
)
def test_bad_input_is_refused(targets: np.ndarray, k: int, match: str) -> None:
    with pytest.raises(OrcaInputError, match=match):
        pseudo_labels(targets, k=k)
