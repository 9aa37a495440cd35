"""Pretrained bodies and their reference data: one registry, one factory.

Builders are registered where they are defined (`_hf.py`, `_timm.py`), each with a
`BackboneInfo`; register your own the same way:

    @BACKBONES.register("my_body", BackboneInfo(kind="sequence"))
    def build_my_body(pretrained: bool, seed: int, **args: Any) -> MyBody: ...

Example:
    >>> from orca_automl.backbones import backbone_kind, create_backbone, default_backbone
    >>> default_backbone("1d"), backbone_kind("minilm")
    ('minilm', 'sequence')
    >>> body = create_backbone("minilm")          # packaged all-MiniLM-L6-v2, offline
    >>> body.kind, body.width
    ('sequence', 384)
"""

from __future__ import annotations

from orca_automl.backbones._base import Backbone, ImageBackbone, ReferenceSet, SequenceBackbone
from orca_automl.backbones._hf import HFEncoderBackbone, refuse_remote_code  # registers hf, minilm
from orca_automl.backbones._registry import (
    BACKBONES,
    BackboneBuilder,
    BackboneInfo,
    backbone_kind,
    create_backbone,
    default_backbone,
)
from orca_automl.backbones._timm import TimmBackbone  # registers timm, efficientnet_lite0

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneBuilder",
    "BackboneInfo",
    "HFEncoderBackbone",
    "ImageBackbone",
    "ReferenceSet",
    "SequenceBackbone",
    "TimmBackbone",
    "backbone_kind",
    "create_backbone",
    "default_backbone",
    "refuse_remote_code",
]
