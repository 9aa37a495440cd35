"""The interface every alignment distance implements.

The align stage calls `fit_source` once with the backbone's reference features and labels
(the source side), then calls the metric on batches of target features many times. Anything
that depends only on the source (class means, covariances, source-source label distances,
the source self-transport term) is computed in `fit_source` and cached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from orca_automl.alignment._common import check_batch


class AlignmentMetric(ABC):
    """A differentiable distance between labelled source and target feature clouds."""

    #: False for "none": the align stage is skipped entirely.
    trains: bool = True

    def fit_source(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Cache the source side: features (n, d) float, labels (n,) int64."""
        self.source_features_ = features.detach().float()
        self.source_labels_ = labels.detach().long()

    @abstractmethod
    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Distance from the cached source to target features (m, d) with labels (m,).

        Returns a scalar tensor; gradients flow into `features` only.
        """


class SeededMetric(AlignmentMetric):
    """A metric that draws random pairings or directions per call from a stream seeded at
    `fit_source`, so every align stage is reproducible. Subclasses declare `seed`."""

    seed: int

    def fit_source(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        check_batch(features, labels)
        super().fit_source(features, labels)
        self.generator_ = torch.Generator().manual_seed(self.seed)
