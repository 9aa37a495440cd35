"""What every pretrained body offers the rest of the package.

A backbone is split at its input layer: the task-specific embedder replaces that layer, the
rest (the "body") is kept whole. Two kinds exist: "sequence" bodies take token vectors of
width `width` (HF encoders via `inputs_embeds`); "image" bodies take the feature map their
first convolution would have produced (`width` channels). `SequenceBackbone` and
`ImageBackbone` declare what the embedders of each kind read from the body. `align_features`
maps an embedder's output to the pooled vectors the body actually receives, and
`reference_features` gives the same view of the backbone's own pretraining modality: those
are the two sides of alignment.
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

    def reference_tokens(self, num_samples: int, seed: int) -> np.ndarray:
        """(n, width) float32 token vectors of the reference modality in the space an embedder
        outputs (a text body's word embeddings, an image body's first-conv pixels): what
        modality bridging (`refine.bridge`) mixes into the embedded target."""
        raise NotImplementedError(
            f"backbone {type(self).__name__} offers no reference tokens for refine.bridge"
        )

    @property
    @abstractmethod
    def out_features(self) -> int:
        """Width of the body's output tokens or channels (what the head reads)."""

    @abstractmethod
    def save_architecture(self, folder: Path) -> tuple[str, dict[str, Any]]:
        """Write what rebuilding this architecture needs into `folder` (no weights, no hub)
        and return the registered backbone name and the backbone_args that rebuild it from
        there with `pretrained: false` (saved models load their own weights on top)."""

    def unused_input_layer(self) -> nn.Module:
        """The original input layer still held but bypassed (the embedder replaces it): its
        weights get no gradient, so fine-tuning leaves them out. None held by default."""
        return nn.Module()

    def blocks(self) -> list[nn.Module]:
        """The body's repeated blocks, input side first (what `refine.scope: top` and
        `layer_decay` count): by default the longest ModuleList or Sequential of modules
        with weights (a transformer's layers, a CNN's stages); [] when there is none."""
        best: list[nn.Module] = []
        for module in self.modules():
            if isinstance(module, (nn.ModuleList, nn.Sequential)):
                children = [c for c in module.children() if any(True for _ in c.parameters())]
                if len(children) >= 2 and len(children) > len(best):
                    best = children
        return best

    def notes(self) -> list[str]:
        """Caveats that every result touching this backbone must carry."""
        if self.pretrained:
            return []
        return [f"backbone {self.identity} runs with RANDOM weights (pretrained: false)"]


class SequenceBackbone(Backbone):
    """A body fed token vectors (B, T, width): what sequence embedders need to know of it.

    Attributes:
        max_positions: the most tokens the body's position table covers.
    """

    kind = "sequence"
    max_positions: int

    @abstractmethod
    def token_norm(self) -> float:
        """Mean L2 norm of the pretrained token vectors: the scale an embedder must match."""


class ImageBackbone(Backbone):
    """A body fed its first convolution's feature map: what image embedders need of it.

    Attributes:
        image_size: the resolution inputs are resized to before that convolution.
    """

    kind = "image"
    image_size: int

    @abstractmethod
    def fresh_stem(self) -> nn.Conv2d:
        """A trainable copy of the pretrained first convolution for an embedder to own."""
