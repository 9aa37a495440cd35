"""Seeded hold-out splits: validation (and, where a source has none, test) carved from train.

Classification splits are stratified and never take a class's last sample, so every class
stays in the part that is trained on; other task types get a plain seeded permutation.
"""

from __future__ import annotations

import numpy as np

from orca_automl.errors import OrcaInputError


def holdout_indices(
    y: np.ndarray, fraction: float, seed: int, *, stratify: bool, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held) row indices with round(fraction * n) rows held out.

    Stratified: each class is shuffled, its i-th of n_c samples gets the key (i + 0.5) / n_c
    (its first sample -1, so it is never held), and the rows with the largest keys are held.
    That holds out about `fraction` of every class; random tie-breaks keep it seeded.
    `what` names the split in error messages (e.g. "validation split of data.npz").
    """
    if not 0.0 < fraction < 1.0:
        raise OrcaInputError(f"{what}: fraction {fraction} must lie strictly between 0 and 1")
    n = len(y)
    n_held = round(fraction * n)
    rng = np.random.default_rng(seed)
    if stratify:
        _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        n_keep_min = len(counts)
        key = np.empty(n)
        for c, count in enumerate(counts):
            members = rng.permutation(np.flatnonzero(codes == c))
            key[members] = (np.arange(count) + 0.5) / count
            key[members[0]] = -1.0
    else:
        n_keep_min = 1
        key = rng.random(n)
    if n_held < 1 or n - n_held < n_keep_min:
        raise OrcaInputError(
            f"{what}: too few samples ({n}) to hold out {fraction:.0%} and keep "
            f"{n_keep_min} for training; add data or give the split explicitly"
        )
    order = np.lexsort((rng.random(n), key))  # by key, random among equal keys
    return np.sort(order[: n - n_held]), np.sort(order[n - n_held :])
