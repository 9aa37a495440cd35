"""Embedders for image backbones: they output what the backbone's first conv would.

ORCA resizes 2D inputs to the backbone's resolution and replaces the patch embedding with a
C-channel convolution whose pretrained kernel is tiled over the new channels. `stem_conv`
does exactly that; `conv_adapter` keeps the pretrained 3-channel stem and learns a small
C -> 3 channel map in front of it instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from orca_automl.embedders._base import Embedder


def adapt_stem(stem: nn.Conv2d, channels: int) -> nn.Conv2d:
    """The stem conv for `channels` inputs, pretrained kernel tiled over them (timm's rule)."""
    from timm.models import adapt_input_conv

    if channels == stem.in_channels:
        return stem
    weight = adapt_input_conv(channels, stem.weight.detach().clone())
    stem.in_channels = channels
    stem.weight = nn.Parameter(weight)
    return stem


class _Resized(Embedder):
    backbone_kind = "image"
    modalities = ("2d",)

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = image_size

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.image_size, self.image_size):
            return x
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                             align_corners=False)


class StemConvEmbedder(_Resized):
    """Resize, then the pretrained first conv re-made for C input channels."""

    def __init__(self, channels: int, stem: nn.Conv2d, image_size: int) -> None:
        super().__init__(image_size)
        self.conv = adapt_stem(stem, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._resize(x))


class ConvAdapterEmbedder(_Resized):
    """A learned C -> 3 channel adapter (3x3 conv, GELU, 1x1 conv) at the input's own
    resolution, resize, then the unchanged pretrained first conv."""

    def __init__(self, channels: int, stem: nn.Conv2d, image_size: int, hidden: int = 16) -> None:
        super().__init__(image_size)
        self.adapter = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, 3, 1)
        )
        self.conv = stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._resize(self.adapter(x)))
