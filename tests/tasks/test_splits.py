"""Seeded hold-out splits: stratified, every class kept for training, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from orca_automl.errors import OrcaInputError
from orca_automl.tasks._splits import holdout_indices


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
