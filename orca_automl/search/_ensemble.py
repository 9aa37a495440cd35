"""Greedy ensemble selection (Caruana et al. 2004, as AutoGluon and auto-sklearn use it):
repeatedly add, with replacement, the candidate whose addition most improves the score of the
averaged predictions; a candidate's weight is how often it was added.

The search runs it over its fully trained configurations' out-of-fold predictions (every
development sample predicted by a model that did not train on it), so the weights are chosen
on data no member saw. The ensemble then competes with the incumbent under the winner rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


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
