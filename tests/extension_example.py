"""A plugin, written as a user would in their own code: a backbone, an embedder, a distance and
a task, each registered where it is defined (the README's "Extend orca-automl" shows the same).

Nothing here is imported by the package; tests import it (`--plugin tests.extension_example`
or a plain import), and the search's Ray workers import it because it registered entries.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from orca_automl.alignment import ALIGNMENT_METRICS, AlignmentMetric
from orca_automl.backbones import (
    BACKBONES,
    Backbone,
    BackboneInfo,
    ReferenceSet,
    SequenceBackbone,
)
from orca_automl.embedders import EMBEDDERS, Embedder, EmbedderInfo
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import TASKS, RawData, Task, build_task


# ------------------------------------------------------------------------------ a backbone
class TinyEncoder(SequenceBackbone):
    """A two-layer transformer encoder with its own position table; "pretrained" weights are
    a fixed seed, standing in for a checkpoint of the user's."""

    def __init__(self, width: int = 16, layers: int = 2, pretrained: bool = True,
                 seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(1234 if pretrained else seed)
            self.positions = nn.Parameter(0.02 * torch.randn(64, width))
            layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=2 * width,
                                               batch_first=True)
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.width, self.layers, self.max_positions = width, layers, 64
        self.pretrained = pretrained
        self.identity = f"tiny_encoder:{width}x{layers}:{'fixed' if pretrained else seed}"

    @property
    def out_features(self) -> int:
        return self.width

    def token_norm(self) -> float:
        return 1.0

    def _embed(self, embedded: torch.Tensor) -> torch.Tensor:
        return embedded + self.positions[: embedded.shape[1]]

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.body(self._embed(embedded))

    def align_features(self, embedded: torch.Tensor) -> torch.Tensor:
        return self._embed(embedded).mean(dim=1)

    def reference(self, num_samples: int, seed: int) -> ReferenceSet:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 4, num_samples)
        centres = rng.normal(size=(4, self.width)) / math.sqrt(self.width)
        features = centres[labels] + 0.1 * rng.normal(size=(num_samples, self.width))
        return ReferenceSet(features.astype(np.float32), labels.astype(np.int64),
                            f"{num_samples} points of 4 Gaussian clusters")

    def save_architecture(self, folder: Path) -> tuple[str, dict[str, Any]]:
        return "tiny_encoder", {"width": self.width, "layers": self.layers}


@BACKBONES.register("tiny_encoder", BackboneInfo(kind=TinyEncoder.kind))
def build_tiny_encoder(pretrained: bool, seed: int, **args: Any) -> Backbone:
    return TinyEncoder(pretrained=pretrained, seed=seed, **args)


# ------------------------------------------------------------------------------ an embedder
@EMBEDDERS.register("linear_patches", EmbedderInfo(
    modalities=("1d",), backbone_kind=SequenceBackbone.kind, defaults={"patch": 8},
))
class LinearPatches(Embedder):
    """Non-overlapping patches of `patch` samples, each mapped to one token by a Linear."""

    def __init__(self, channels: int, length: int, width: int, patch: int) -> None:
        super().__init__()
        self.patch, self.tokens = patch, math.ceil(length / patch)
        self.linear = nn.Linear(channels * patch, width)

    @classmethod
    def from_backbone(cls, backbone: Backbone, input_shape: tuple[int, ...], **args: Any) -> Self:
        if not isinstance(backbone, SequenceBackbone):
            raise OrcaInputError("linear_patches feeds sequence backbones only")
        return cls(channels=input_shape[0], length=input_shape[-1], width=backbone.width, **args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (0, self.tokens * self.patch - x.shape[-1]))
        b, c, _ = x.shape
        patches = x.reshape(b, c, self.tokens, self.patch).permute(0, 2, 1, 3)
        return self.linear(patches.reshape(b, self.tokens, c * self.patch))


# ------------------------------------------------------------------------------ a distance
@ALIGNMENT_METRICS.register("mean_gap")
class MeanGap(AlignmentMetric):
    """Squared distance between the source and target means (label-agnostic)."""

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        source_mean = self.source_features_.mean(dim=0).to(features)
        return (features.mean(dim=0) - source_mean).square().sum()


# ------------------------------------------------------------------------------ a task
@TASKS.register("sine_or_square")
def sine_or_square(seed: int, val_fraction: float | None = None) -> Task:
    """120 noisy series of length 48: a sine wave (class 0) or a square wave (class 1)."""
    rng = np.random.default_rng(7)  # the data are fixed; `seed` only draws the validation split
    labels = rng.integers(0, 2, 120)
    phase = rng.uniform(0, 2 * np.pi, (120, 1))
    wave = np.sin(np.linspace(0, 4 * np.pi, 48)[None] + phase)
    X = np.where(labels[:, None] == 1, np.sign(wave), wave) + 0.3 * rng.normal(size=(120, 48))
    return build_task(
        "sine_or_square", RawData(X[:, None, :].astype(np.float32), labels),
        modality="1d", source="tests.extension_example",
        intro="sine or square wave, from 48 noisy samples", seed=seed,
        val_fraction=val_fraction,
    )
