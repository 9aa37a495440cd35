"""Pretrained bodies and their reference data: one registry, one factory.

Example:
    >>> from orca_automl.backbones import create_backbone
    >>> body = create_backbone("minilm")          # packaged all-MiniLM-L6-v2, offline
    >>> body.kind, body.width
    ('sequence', 384)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orca_automl.backbones._base import Backbone, ReferenceSet
from orca_automl.backbones._hf import HFEncoderBackbone, build_hf, build_minilm
from orca_automl.backbones._timm import TimmBackbone, build_efficientnet_lite0, build_timm
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry

BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")
BACKBONES.register("minilm")(build_minilm)
BACKBONES.register("hf")(build_hf)
BACKBONES.register("timm")(build_timm)
BACKBONES.register("efficientnet_lite0")(build_efficientnet_lite0)

#: The backbone "auto" picks per task modality (both ship inside PyPI packages).
DEFAULT_BACKBONES = {"1d": "minilm", "tabular": "minilm", "2d": "efficientnet_lite0"}


def create_backbone(
    name: str, args: dict[str, Any] | None = None, pretrained: bool = True, seed: int = 0
) -> Backbone:
    """Build a registered backbone; bad arguments become one actionable line."""
    builder = BACKBONES.get(name)
    try:
        return builder(pretrained=pretrained, seed=seed, **(args or {}))
    except TypeError as exc:
        raise OrcaInputError(f"backbone {name!r}: bad backbone_args ({exc})") from None


__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONES",
    "Backbone",
    "HFEncoderBackbone",
    "ReferenceSet",
    "TimmBackbone",
    "create_backbone",
]
