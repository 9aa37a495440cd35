"""Pseudo-labels for targets that are not class indices (regression, dense, multilabel).

OTDD needs a label per target sample; ORCA clusters the targets with k-means (k = 10) and
uses the cluster index.
"""

from __future__ import annotations

import numpy as np

from orca_automl.errors import OrcaInputError


def pseudo_labels(targets: np.ndarray, k: int = 10, seed: int = 0) -> np.ndarray:
    """k-means cluster index (int64, (N,)) of each sample's flattened target.

    k is capped by the number of distinct target rows, so constant or few-valued targets
    still get valid labels.

    Example:
        >>> import numpy as np
        >>> pseudo_labels(np.array([[0.0], [0.1], [5.0], [5.1]]), k=2).tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
        True
    """
    array = np.asarray(targets, dtype=np.float64)
    if array.ndim == 0 or array.size == 0:
        raise OrcaInputError(
            f"pseudo_labels needs at least one non-empty target, got shape {np.shape(targets)}"
        )
    flat = array.reshape(len(array), -1)
    if not np.isfinite(flat).all():
        raise OrcaInputError(
            "pseudo_labels got NaN or infinite targets: clean or impute them first"
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise OrcaInputError(f"pseudo_labels: k must be an integer >= 1, got {k!r}")
    from sklearn.cluster import KMeans

    n_clusters = min(int(k), len(np.unique(flat, axis=0)))
    kmeans = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
    return kmeans.fit_predict(flat).astype(np.int64)
