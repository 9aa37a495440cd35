"""Predictors: map the body's output to the task's label space.

Classification, multi-label and regression pool the body's output (mean over tokens, or
global average over the feature map) into a Linear layer, as ORCA does. Dense outputs keep
positions: `dense_tokens` turns each token into the values of the patch it came from (1D:
C_out x k samples; 2D: C_out x p x p pixels) and reassembles the grid; `dense_grid` is a
light decoder for image backbones (1x1 conv, pixel shuffle, bilinear resize to H x W).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from orca_automl.embedders._base import TokenLayout
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry


class PoolLinearHead(nn.Module):
    def __init__(self, in_features: int, outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pooled = h.mean(dim=1) if h.ndim == 3 else h.mean(dim=(2, 3))
        return self.linear(self.dropout(pooled))


class DenseTokensHead(nn.Module):
    """Per-token values reassembled into the input's 1D or 2D layout."""

    def __init__(self, in_features: int, out_channels: int, layout: TokenLayout) -> None:
        super().__init__()
        if layout.kind not in ("1d", "2d"):
            raise OrcaInputError("dense_tokens needs an embedder that tiles its input into patches")
        self.layout, self.out_channels = layout, out_channels
        per_token = out_channels * layout.patch ** (1 if layout.kind == "1d" else 2)
        self.linear = nn.Linear(in_features, per_token)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        lay, c, p = self.layout, self.out_channels, self.layout.patch
        v = self.linear(h)
        if lay.kind == "1d":
            return v.reshape(b, t, c, p).permute(0, 2, 1, 3).reshape(b, c, t * p)[..., : lay.length]
        gh, gw = math.ceil(lay.height / p), math.ceil(lay.width / p)
        v = v.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return v.reshape(b, c, gh * p, gw * p)[..., : lay.height, : lay.width]


class DenseGridHead(nn.Module):
    """Image-backbone feature map -> (C_out, H, W)."""

    def __init__(self, in_features: int, out_channels: int, size: tuple[int, int], shuffle: int = 4) -> None:
        super().__init__()
        self.size, self.shuffle = size, shuffle
        self.proj = nn.Conv2d(in_features, out_channels * shuffle * shuffle, kernel_size=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        up = F.pixel_shuffle(self.proj(h), self.shuffle)
        return F.interpolate(up, size=self.size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class HeadSpec:
    """What a head builder needs to know about the task, body and embedder."""

    task_type: str
    backbone_kind: str
    in_features: int
    outputs: int
    output_shape: tuple[int, ...]
    layout: TokenLayout
    dropout: float = 0.0


HEADS: Registry[Callable[[HeadSpec], nn.Module], None] = Registry("head")


@HEADS.register("pool_linear")
def _pool_linear(spec: HeadSpec) -> nn.Module:
    if spec.task_type == "dense":
        raise OrcaInputError("head pool_linear cannot predict dense outputs: use head auto")
    return PoolLinearHead(spec.in_features, spec.outputs, spec.dropout)


@HEADS.register("dense_tokens")
def _dense_tokens(spec: HeadSpec) -> nn.Module:
    if spec.task_type != "dense" or spec.backbone_kind != "sequence":
        raise OrcaInputError("head dense_tokens needs a dense task and a sequence backbone")
    return DenseTokensHead(spec.in_features, spec.outputs, spec.layout)


@HEADS.register("dense_grid")
def _dense_grid(spec: HeadSpec) -> nn.Module:
    if spec.task_type != "dense" or spec.backbone_kind != "image" or len(spec.output_shape) != 3:
        raise OrcaInputError("head dense_grid needs a 2D dense task and an image backbone")
    return DenseGridHead(spec.in_features, spec.outputs, (spec.output_shape[1], spec.output_shape[2]))


def create_head(name: str, spec: HeadSpec) -> nn.Module:
    """The one factory; "auto" picks pool_linear, or the dense head that fits the backbone."""
    if name == "auto":
        if spec.task_type != "dense":
            name = "pool_linear"
        else:
            name = "dense_tokens" if spec.backbone_kind == "sequence" else "dense_grid"
    return HEADS.get(name)(spec)
