"""Sliced Wasserstein: the mean over random directions of the exact 1D W2^2 (label-agnostic).

Directions are drawn afresh per call (from a generator seeded at `fit_source`), so over an
align stage the loss constrains many more directions than one call's `n_projections`.
Unequal sample sizes are handled exactly: both quantile functions are piecewise constant, so
W2^2 is a sum over the merged breakpoints {i/n} U {j/m}. Gradients flow through the sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from orca_automl.alignment._base import SeededMetric
from orca_automl.alignment._common import check_batch, check_integer
from orca_automl.alignment._registry import ALIGNMENT_METRICS


def wasserstein_1d_squared(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact W2^2 between uniform empirical measures, per column of u (n, L) and v (m, L)."""
    n, m = len(u), len(v)
    u_sorted, v_sorted = u.sort(0).values, v.sort(0).values

    def steps(k: int) -> torch.Tensor:
        return torch.arange(1, k + 1, dtype=torch.float64, device=u.device) / k

    levels = torch.cat([steps(n), steps(m)]).sort().values
    widths = torch.diff(levels, prepend=levels.new_zeros(1))
    middles = levels - widths / 2
    u_index = (middles * n).long().clamp_max(n - 1)
    v_index = (middles * m).long().clamp_max(m - 1)
    gaps = (u_sorted[u_index] - v_sorted[v_index]).square()
    return (widths.to(u.dtype)[:, None] * gaps).sum(0)


@ALIGNMENT_METRICS.register("sliced_wasserstein")
@dataclass(eq=False)
class SlicedWasserstein(SeededMetric):
    """Squared sliced Wasserstein-2 distance between source and target features.

    Args:
        n_projections: random unit directions per call.
        seed: seed of the direction stream (reset by `fit_source`).
    """

    n_projections: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer("sliced_wasserstein", "n_projections", self.n_projections, minimum=1)
        check_integer("sliced_wasserstein", "seed", self.seed, minimum=0)

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(features, labels, self.source_features_.shape[1])
        directions = torch.randn(
            features.shape[1], self.n_projections, generator=self.generator_
        ).to(features)
        directions = directions / directions.norm(dim=0, keepdim=True)
        source = self.source_features_.to(features)
        return wasserstein_1d_squared(source @ directions, features @ directions).mean()
