"""What an embedder is: the task-specific input layer that replaces the backbone's own.

An embedder maps one batch of task inputs to what the body receives: tokens (B, T, width)
for sequence backbones, or the first convolution's feature map (B, width, h, w) for image
backbones. Its registry info declares which input modalities and which backbone kind it
serves, so the factory can refuse a mismatch with a clear line before any training starts;
`from_backbone` then reads what it needs from the body. Dense heads need to know how outputs
map back to input positions: `layout` says it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Self

import torch
from torch import nn

from orca_automl.backbones import Backbone


@dataclass(frozen=True)
class TokenLayout:
    """How tokens tile the input: 1D patches of `patch` samples over `length`, or 2D
    patches of `patch` x `patch` pixels over (`height`, `width`) (None when not tiled)."""

    kind: str  # "1d", "2d" or "none"
    patch: int = 1
    length: int = 0
    height: int = 0
    width: int = 0


class Embedder(nn.Module, ABC):
    """Input layer for one task and one backbone."""

    layout: TokenLayout = TokenLayout("none")

    @classmethod
    @abstractmethod
    def from_backbone(cls, backbone: Backbone, input_shape: tuple[int, ...], **args: Any) -> Self:
        """Build for inputs of per-sample shape `input_shape` and this body; `args` are the
        embedder_args over the registered defaults. A body of the wrong type is an
        `OrcaInputError`."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task input batch -> what the body receives."""
