"""Seeded splits: hold-out validation (and, where a source has none, test) carved from train,
and cross-validation folds of the development data.

Classification splits are stratified; a hold-out never takes a class's last sample, so every
class stays in the part that is trained on; other task types get a plain seeded permutation.
"""

from __future__ import annotations

import warnings

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


def fold_indices(
    y: np.ndarray, k: int, seed: int, *, stratify: bool, what: str
) -> list[np.ndarray]:
    """The sorted validation rows of each of k seeded folds: disjoint, together every row.

    Stratified folds (classification) keep each class's share in every fold as far as its
    count allows; a class with fewer than k samples is spread over as many folds as it has.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(y)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise OrcaInputError(f"{what}: the number of folds must be a whole number >= 2, got {k!r}")
    if n < 2 * k:
        raise OrcaInputError(
            f"{what}: {n} samples are too few for {k} folds (each fold needs at least 2); "
            "use fewer folds or the hold-out protocol"
        )
    if stratify:
        splitter: KFold | StratifiedKFold = StratifiedKFold(k, shuffle=True, random_state=seed % 2**32)
    else:
        splitter = KFold(k, shuffle=True, random_state=seed % 2**32)
    with warnings.catch_warnings():  # "the least populated class has only m members": expected
        warnings.simplefilter("ignore", UserWarning)
        folds = [np.sort(held) for _, held in splitter.split(np.zeros((n, 1)), y if stratify else None)]
    return folds
