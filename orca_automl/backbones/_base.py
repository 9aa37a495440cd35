"""What every pretrained body offers the rest of the package.

A backbone is split at its input layer: the task-specific embedder replaces that layer, the
rest (the "body") is kept whole. Two kinds exist: "sequence" bodies take token vectors of
width `width` (HF encoders via `inputs_embeds`); "image" bodies take the feature map their
first convolution would have produced (`width` channels). `align_features` maps an embedder's
output to the pooled vectors the body actually receives, and `reference_features` gives the
same view of the backbone's own pretraining modality: those are the two sides of alignment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ReferenceSet:
    """Source-side features for alignment: (n, d) float32 and (n,) int64 labels."""

    features: np.ndarray
    labels: np.ndarray
    description: str


class Backbone(nn.Module, ABC):
    """A pretrained body with its input layer detached.

    Attributes:
        kind: "sequence" or "image".
        width: token width (sequence) or channels of the first conv's output (image).
        pretrained: False when the weights are random (every result says so).
        identity: a string naming architecture + weights, used for caches and like-for-like
            comparisons of alignment losses.
    """

    kind: str
    width: int
    pretrained: bool
    identity: str

    @abstractmethod
    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """Run the body: tokens (B, T, width) -> (B, T, width'), or a stem feature map
        (B, width, h, w) -> the last feature map (B, F, h', w')."""

    @abstractmethod
    def align_features(self, embedded: torch.Tensor) -> torch.Tensor:
        """Pooled (B, d) view of what the body receives, for the alignment distance."""

    @abstractmethod
    def reference(self, num_samples: int, seed: int) -> ReferenceSet:
        """The backbone's own-modality reference features (cached on disk)."""

    @property
    @abstractmethod
    def out_features(self) -> int:
        """Width of the body's output tokens or channels (what the head reads)."""

    @abstractmethod
    def save_architecture(self, folder: Path) -> dict[str, Any]:
        """Write what rebuilding this architecture needs (no weights, no hub) and return the
        backbone_args that rebuild it from there."""

    def notes(self) -> list[str]:
        """Caveats that every result touching this backbone must carry."""
        if self.pretrained:
            return []
        return [f"backbone {self.identity} runs with RANDOM weights (pretrained: false)"]
