"""Greedy ensemble selection (Caruana et al. 2004, as AutoGluon and auto-sklearn use it):
repeatedly add, with replacement, the candidate whose addition most improves the score of the
averaged predictions; a candidate's weight is how often it was added.

The search runs it over its fully trained configurations' out-of-fold predictions (every
development sample predicted by a model that did not train on it), so the weights are chosen
on data no member saw. But the blend's score on the rows its weights were chosen on is the
best of many mixtures, optimistic as any selection is: an ensemble holding the incumbent is
never below it there. So the ensemble competes with the incumbent under the winner rule on
cross-fitted predictions (`cross_fitted`): each part of the rows blended with weights chosen on
the others, the honest estimate of the selection procedure, as stacking is cross-fitted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.model_selection import KFold


def greedy_weights(
    candidates: Sequence[np.ndarray], score: Callable[[np.ndarray], float], rounds: int = 25
) -> np.ndarray:
    """Weights (summing to 1) of each candidate's predictions, chosen greedily with
    replacement over `rounds` additions; ties go to the earlier candidate.

    Example:
        >>> import numpy as np
        >>> y = np.array([0, 1, 1])
        >>> a = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])    # wrong on the last sample
        >>> b = np.array([[0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])    # wrong on the first
        >>> greedy_weights([a, b], lambda p: float((p.argmax(1) == y).mean()), rounds=2)
        array([0.5, 0.5])
    """
    counts = np.zeros(len(candidates))
    total = np.zeros_like(np.asarray(candidates[0], dtype=np.float64))
    for added in range(1, rounds + 1):
        scores = [score((total + c) / added) for c in candidates]
        best = int(np.argmax(scores))  # the first of equal scores
        counts[best] += 1
        total = total + candidates[best]
    return counts / counts.sum()


def cross_fitted(
    candidates: Sequence[np.ndarray], y: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], float], parts: int = 5, seed: int = 0,
    rounds: int = 25,
) -> np.ndarray:
    """The blended predictions of each of `parts` shuffled parts of the rows, with weights
    chosen by `greedy_weights` on the other parts (`score(targets, blend)`), so no row's blend
    was chosen on that row. Fewer than two rows per part: fewer parts; under 4 rows, the blend
    chosen on all rows (nothing to hold out).
    """
    stacked = [np.asarray(c, dtype=np.float64) for c in candidates]
    parts = min(parts, len(y) // 2)
    if parts < 2:
        weights = greedy_weights(stacked, lambda blend: score(y, blend), rounds)
        return sum(w * c for w, c in zip(weights, stacked, strict=True))
    out = np.zeros_like(stacked[0])
    for chosen_on, held in KFold(parts, shuffle=True, random_state=seed).split(stacked[0]):
        weights = greedy_weights([c[chosen_on] for c in stacked],
                                 functools.partial(score, y[chosen_on]), rounds)
        out[held] = sum(w * c[held] for w, c in zip(weights, stacked, strict=True))
    return out
