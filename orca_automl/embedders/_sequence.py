"""Embedders for sequence (text) backbones: 1D series, tabular rows and 2D grids as tokens.

Every one ends in a LayerNorm scaled by `token_norm / sqrt(width)`, so the embedded vectors
have the norm of the backbone's own word embeddings (~1 for MiniLM).
A fresh LayerNorm would output norm sqrt(width) (~20), drowning the pretrained position
signal (docs/benchmarks/findings.md).
"""

from __future__ import annotations

import math
from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import nn

from orca_automl.backbones import Backbone, SequenceBackbone
from orca_automl.embedders._base import Embedder, TokenLayout
from orca_automl.embedders._registry import EMBEDDERS, EmbedderInfo
from orca_automl.errors import OrcaInputError


class ScaledLayerNorm(nn.Module):
    """LayerNorm (weight 1, bias 0) times a constant: output norm `token_norm` at init.

    The constant is a buffer, not the LayerNorm's weight: Adam moves every parameter by about
    its learning rate per step, so a weight initialised at 1/sqrt(width) ~ 0.05 would be
    rescaled wholesale by a few alignment steps at lr 1e-2, destroying the scale it sets.
    """

    def __init__(self, width: int, token_norm: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.register_buffer("scale", torch.tensor(token_norm / math.sqrt(width)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale


def patch_size(length: int, target_seq_len: int, max_positions: int) -> int:
    """The smallest patch (= kernel = stride) giving at most `target_seq_len` tokens.

    ORCA picks the smallest divisor of L; for prime or awkward L that degenerates to one
    token, so we take ceil(L / target) and zero-pad the end instead.
    """
    if target_seq_len < 1:
        raise OrcaInputError(f"embedder_args.target_seq_len must be >= 1, got {target_seq_len}")
    k = max(1, math.ceil(length / min(target_seq_len, max_positions)))
    return k


def token_args(backbone: Backbone) -> dict[str, Any]:
    """What a sequence embedder reads from its body: token width, scale and positions."""
    if not isinstance(backbone, SequenceBackbone):
        raise OrcaInputError(
            f"backbone {backbone.identity} is not a SequenceBackbone: sequence embedders need "
            "its token width, token norm and positions"
        )
    return {
        "width": backbone.width,
        "token_norm": backbone.token_norm(),
        "max_positions": backbone.max_positions,
    }


class _Patch1d(Embedder):
    """Shared per-sample normalisation, padding and layout for 1D patch embedders.

    With `instance_norm`, each series is scaled by its own statistics per channel,
    (x - mean over time) / (std over time + 1e-5), before patching: the embedding then sees
    shape, not level or amplitude. Tabular rows (B, F) are left alone: a row's mean and std
    mix features of different units, so they describe no property of the sample.
    """

    def __init__(self, channels: int, length: int, patch: int, instance_norm: bool) -> None:
        super().__init__()
        if not isinstance(instance_norm, bool):
            raise OrcaInputError(
                f"embedder_args.instance_norm must be true or false, got {instance_norm!r}"
            )
        self.channels, self.length, self.patch = channels, length, patch
        self.instance_norm = instance_norm
        self.tokens = math.ceil(length / patch)
        self.layout = TokenLayout("1d", patch=patch, length=length)

    @classmethod
    def from_backbone(cls, backbone: Backbone, input_shape: tuple[int, ...], **args: Any) -> Self:
        """(C, L) series; (F,) tabular rows are one-channel sequences of length F."""
        channels = input_shape[0] if len(input_shape) > 1 else 1
        return cls(channels=channels, length=input_shape[-1], **token_args(backbone), **args)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # tabular rows (B, F) are one-channel sequences (never normalised)
            x = x.unsqueeze(1)
        elif self.instance_norm:
            std, mean = torch.std_mean(x, dim=-1, keepdim=True, unbiased=False)
            x = (x - mean) / (std + 1e-5)
        extra = self.tokens * self.patch - x.shape[-1]
        return F.pad(x, (0, extra)) if extra else x


@EMBEDDERS.register("conv1d", EmbedderInfo(
    modalities=("1d", "tabular"), backbone_kind=SequenceBackbone.kind,
    defaults={"target_seq_len": 64, "instance_norm": False}, default_for=("1d",),
))
class Conv1dEmbedder(_Patch1d):
    """ORCA's 1D embedder: Conv1d(C -> width, kernel = stride = k) + LayerNorm."""

    def __init__(
        self, channels: int, length: int, width: int, token_norm: float, max_positions: int,
        target_seq_len: int, instance_norm: bool,
    ) -> None:
        super().__init__(
            channels, length, patch_size(length, target_seq_len, max_positions), instance_norm
        )
        self.conv = nn.Conv1d(channels, width, kernel_size=self.patch, stride=self.patch)
        self.norm = ScaledLayerNorm(width, token_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self._prepare(x)).transpose(1, 2))


@EMBEDDERS.register("patch_mlp", EmbedderInfo(
    modalities=("1d",), backbone_kind=SequenceBackbone.kind,
    defaults={"target_seq_len": 64, "hidden": 256, "instance_norm": False},
))
class PatchMLPEmbedder(_Patch1d):
    """Non-overlapping patches through a two-layer MLP: a non-linear alternative to the
    single linear map of Conv1d, for series whose local shape matters more than level."""

    def __init__(
        self, channels: int, length: int, width: int, token_norm: float, max_positions: int,
        target_seq_len: int, hidden: int, instance_norm: bool,
    ) -> None:
        super().__init__(
            channels, length, patch_size(length, target_seq_len, max_positions), instance_norm
        )
        self.mlp = nn.Sequential(
            nn.Linear(channels * self.patch, hidden), nn.GELU(), nn.Linear(hidden, width)
        )
        self.norm = ScaledLayerNorm(width, token_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        b, c, _ = x.shape
        patches = x.reshape(b, c, self.tokens, self.patch).permute(0, 2, 1, 3)
        return self.norm(self.mlp(patches.reshape(b, self.tokens, c * self.patch)))


@EMBEDDERS.register("tabular_linear", EmbedderInfo(
    modalities=("tabular",), backbone_kind=SequenceBackbone.kind, defaults={},
    default_for=("tabular",),
))
class TabularEmbedder(Embedder):
    """One token per feature: token_f = x_f * w_f + b_f (each feature its own direction),
    as ORCA embeds tabular data; categorical columns arrive one-hot encoded."""

    def __init__(self, features: int, width: int, token_norm: float, max_positions: int) -> None:
        super().__init__()
        if features > max_positions:
            raise OrcaInputError(
                f"tabular embedder: {features} features exceed the backbone's {max_positions} "
                "positions; use embedder conv1d with target_seq_len <= that"
            )
        self.weight = nn.Parameter(torch.randn(features, width) / math.sqrt(width))
        self.bias = nn.Parameter(torch.randn(features, width) / math.sqrt(width))
        self.norm = ScaledLayerNorm(width, token_norm)

    @classmethod
    def from_backbone(cls, backbone: Backbone, input_shape: tuple[int, ...], **args: Any) -> Self:
        return cls(features=input_shape[-1], **token_args(backbone), **args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.unsqueeze(-1) * self.weight + self.bias)


@EMBEDDERS.register("patch_tokens", EmbedderInfo(
    modalities=("2d",), backbone_kind=SequenceBackbone.kind, defaults={"target_seq_len": 64},
    default_for=("2d",),
))
class PatchTokensEmbedder(Embedder):
    """2D grids for a sequence backbone: p x p patches -> Conv2d -> tokens (ViT-style)."""

    def __init__(
        self, channels: int, height: int, width_px: int, width: int, token_norm: float,
        max_positions: int, target_seq_len: int,
    ) -> None:
        super().__init__()
        target = min(target_seq_len, max_positions)
        p = 1
        while math.ceil(height / p) * math.ceil(width_px / p) > target:
            p += 1
        self.patch = p
        self.grid = (math.ceil(height / p), math.ceil(width_px / p))
        self.layout = TokenLayout("2d", patch=p, height=height, width=width_px)
        self.conv = nn.Conv2d(channels, width, kernel_size=p, stride=p)
        self.norm = ScaledLayerNorm(width, token_norm)

    @classmethod
    def from_backbone(cls, backbone: Backbone, input_shape: tuple[int, ...], **args: Any) -> Self:
        c, h, w = input_shape
        return cls(channels=c, height=h, width_px=w, **token_args(backbone), **args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gh, gw = self.grid
        x = F.pad(x, (0, gw * self.patch - x.shape[-1], 0, gh * self.patch - x.shape[-2]))
        return self.norm(self.conv(x).flatten(2).transpose(1, 2))
