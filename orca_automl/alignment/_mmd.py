"""MMD: squared maximum mean discrepancy with a mixture of Gaussian kernels (label-agnostic).

ORCA's alternative metric. The base bandwidth h is the mean pairwise squared distance of the
pooled source and target features (ORCA's choice), recomputed per call so the kernels stay
informative while the target moves, and held constant for the gradient; the kernel averages
exp(-||x - y||^2 / (s h)) over the scales s. The estimator is the biased (V-statistic) one: it
is >= 0, exactly 0 when source == target and smooth, which suits a loss; the unbiased one can
go negative on small batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from orca_automl.alignment._base import AlignmentMetric
from orca_automl.alignment._common import check_batch, check_number, squared_distances
from orca_automl.alignment._registry import ALIGNMENT_METRICS
from orca_automl.errors import OrcaInputError


@ALIGNMENT_METRICS.register("mmd")
@dataclass(eq=False)
class MMD(AlignmentMetric):
    """Biased multi-scale Gaussian-kernel MMD^2 between source and target features.

    Args:
        bandwidth_scales: multipliers of the pooled mean squared distance, one kernel each.

    Example:
        >>> import torch
        >>> metric = MMD()
        >>> metric.fit_source(torch.randn(40, 8), torch.zeros(40, dtype=torch.long))
        >>> float(metric(torch.randn(30, 8) + 3.0, torch.zeros(30, dtype=torch.long))) > 0.1
        True
    """

    bandwidth_scales: Sequence[float] = (0.5, 1.0, 2.0)

    def __post_init__(self) -> None:
        if (
            isinstance(self.bandwidth_scales, str | bytes)
            or not isinstance(self.bandwidth_scales, Sequence)
            or len(self.bandwidth_scales) == 0
        ):
            raise OrcaInputError(
                "alignment metric 'mmd': bandwidth_scales must be a non-empty list of numbers"
                f" > 0, got {self.bandwidth_scales!r}"
            )
        for scale in self.bandwidth_scales:
            check_number("mmd", "each of bandwidth_scales", scale, minimum=0.0, inclusive=False)
        self.bandwidth_scales = tuple(float(s) for s in self.bandwidth_scales)

    def fit_source(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Cache the source features and their pairwise squared distances (n^2 floats)."""
        check_batch(features, labels)
        super().fit_source(features, labels)
        self.source_distances_ = squared_distances(self.source_features_, self.source_features_)

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(features, labels, self.source_features_.shape[1])
        source = self.source_features_.to(features)
        with torch.no_grad():
            pooled = torch.cat([source, features.detach()])
            n = len(pooled)
            spread = (pooled - pooled.mean(0)).square().sum(1).mean()
            bandwidth = (2.0 * n / (n - 1) * spread).clamp_min(torch.finfo(spread.dtype).tiny)
            source_term = self._kernel_mean(self.source_distances_.to(features), bandwidth)
        cross_term = self._kernel_mean(squared_distances(source, features), bandwidth)
        target_term = self._kernel_mean(squared_distances(features, features), bandwidth)
        return source_term + target_term - 2.0 * cross_term

    def _kernel_mean(self, distances: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
        """Mean kernel value over all pairs, averaged over the bandwidth scales."""
        kernels = [torch.exp(distances / (-s * bandwidth)).mean() for s in self.bandwidth_scales]
        return torch.stack(kernels).mean()
