"""What an embedder is: the task-specific input layer that replaces the backbone's own.

An embedder maps one batch of task inputs to what the body receives: tokens (B, T, width)
for sequence backbones, or the first convolution's feature map (B, width, h, w) for image
backbones. It declares which input modalities and which backbone kind it serves, so the
factory can refuse a mismatch with a clear line before any training starts. Dense heads need
to know how outputs map back to input positions: `layout` says it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


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

    #: task modalities this embedder accepts ("1d", "2d", "tabular").
    modalities: tuple[str, ...] = ()
    #: the backbone kind it feeds ("sequence" or "image").
    backbone_kind: str = ""

    layout: TokenLayout = TokenLayout("none")

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task input batch -> what the body receives."""
