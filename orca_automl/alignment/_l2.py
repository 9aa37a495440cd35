"""L2 between paired batches: ORCA's simplest alignment baseline (label-agnostic).

Each target sample is paired with a random source sample (without replacement while the
source has enough points) and the loss is the mean squared distance of the pairs. It is
not a distance between distributions: it pulls every target point towards random source
points, i.e. mostly matches the first two moments. A new pairing is drawn per call from a
generator seeded at `fit_source`, so an align stage is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from orca_automl.alignment._base import SeededMetric
from orca_automl.alignment._common import check_batch, check_integer
from orca_automl.alignment._registry import ALIGNMENT_METRICS


@ALIGNMENT_METRICS.register("l2")
@dataclass(eq=False)
class PairedL2(SeededMetric):
    """Mean squared distance between target samples and randomly paired source samples.

    Args:
        seed: seed of the pairing stream (reset by `fit_source`).
    """

    seed: int = 0

    def __post_init__(self) -> None:
        check_integer("l2", "seed", self.seed, minimum=0)

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(features, labels, self.source_features_.shape[1])
        n, m = len(self.source_features_), len(features)
        if m <= n:
            pairs = torch.randperm(n, generator=self.generator_)[:m]
        else:
            pairs = torch.randint(n, (m,), generator=self.generator_)
        partners = self.source_features_[pairs].to(features)
        return (features - partners).square().sum(1).mean()
