"""Embedders for image backbones: they output what the backbone's first conv would.

ORCA resizes 2D inputs to the backbone's resolution and replaces the patch embedding with a
C-channel convolution whose pretrained kernel is tiled over the new channels. `stem_conv`
does exactly that; `conv_adapter` keeps the pretrained 3-channel stem and learns a small
C -> 3 channel map in front of it instead.
"""

from __future__ import annotations

from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import nn

from orca_automl.backbones import Backbone, ImageBackbone
from orca_automl.embedders._base import Embedder
from orca_automl.embedders._registry import EMBEDDERS, EmbedderInfo
from orca_automl.errors import OrcaInputError


def adapt_stem(stem: nn.Conv2d, channels: int) -> nn.Conv2d:
    """The stem conv for `channels` inputs, pretrained kernel tiled over them (timm's rule)."""
    from timm.models import adapt_input_conv

    if channels == stem.in_channels:
        return stem
    weight = adapt_input_conv(channels, stem.weight.detach().clone())
    stem.in_channels = channels
    stem.weight = nn.Parameter(weight)
    return stem


def stem_args(backbone: Backbone, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """What an image embedder reads from its body: its own copy of the first convolution and
    the resolution the body expects, for inputs of (C, H, W)."""
    if not isinstance(backbone, ImageBackbone):
        raise OrcaInputError(
            f"backbone {backbone.identity} is not an ImageBackbone: image embedders need its "
            "first convolution and image size"
        )
    return {
        "channels": input_shape[0],
        "stem": backbone.fresh_stem(),
        "image_size": backbone.image_size,
    }


class _Resized(Embedder):
    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = image_size

    @classmethod
    def from_backbone(cls, backbone: Backbone, input_shape: tuple[int, ...], **args: Any) -> Self:
        return cls(**stem_args(backbone, input_shape), **args)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.image_size, self.image_size):
            return x
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                             align_corners=False)


@EMBEDDERS.register("stem_conv", EmbedderInfo(
    modalities=("2d",), backbone_kind=ImageBackbone.kind, defaults={}, default_for=("2d",),
))
class StemConvEmbedder(_Resized):
    """Resize, then the pretrained first conv re-made for C input channels."""

    def __init__(self, channels: int, stem: nn.Conv2d, image_size: int) -> None:
        super().__init__(image_size)
        self.conv = adapt_stem(stem, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._resize(x))


@EMBEDDERS.register("conv_adapter", EmbedderInfo(
    modalities=("2d",), backbone_kind=ImageBackbone.kind, defaults={"hidden": 16},
))
class ConvAdapterEmbedder(_Resized):
    """A learned C -> 3 channel adapter (3x3 conv, GELU, 1x1 conv) at the input's own
    resolution, resize, then the unchanged pretrained first conv."""

    def __init__(self, channels: int, stem: nn.Conv2d, image_size: int, hidden: int) -> None:
        super().__init__(image_size)
        self.adapter = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, 3, 1)
        )
        self.conv = stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._resize(self.adapter(x)))
