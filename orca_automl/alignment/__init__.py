"""Distribution-alignment metrics for ORCA's align stage (Stage 2).

The align stage trains only the embedder so that target features, mean-pooled over tokens,
come close to the backbone's reference (source) features under one of these distances:
OTDD (ORCA's choice, Gaussian or exact label distances), MMD, L2 between paired batches,
sliced Wasserstein, or "none" (skip the stage). Every metric is built by `create_metric`.
`label_structure_loss` is the label-aware term the stage may add (align.label_weight).

Example:
    >>> import torch
    >>> from orca_automl.alignment import create_metric
    >>> metric = create_metric("otdd_gaussian")
    >>> metric.fit_source(torch.randn(50, 8), torch.arange(50) % 5)
    >>> target = torch.randn(20, 8, requires_grad=True)
    >>> loss = metric(target, torch.arange(20) % 2)
    >>> loss.backward()
"""

from orca_automl.alignment import _l2, _mmd, _none, _otdd, _sliced  # noqa: F401  (registration)
from orca_automl.alignment._base import AlignmentMetric
from orca_automl.alignment._common import squared_distances
from orca_automl.alignment._label_distances import class_clouds
from orca_automl.alignment._label_structure import label_structure_loss
from orca_automl.alignment._pseudo_labels import pseudo_labels
from orca_automl.alignment._registry import ALIGNMENT_METRICS, create_metric
from orca_automl.alignment._transport import EMD_MAX_ITER

__all__ = [
    "ALIGNMENT_METRICS",
    "EMD_MAX_ITER",
    "AlignmentMetric",
    "class_clouds",
    "create_metric",
    "label_structure_loss",
    "pseudo_labels",
    "squared_distances",
]
