"""Dimensionality alignment: input embedders and output heads, one registry each.

Example:
    >>> from orca_automl.embedders import compatible_embedders
    >>> compatible_embedders("1d")
    ['conv1d', 'patch_mlp']
"""

from __future__ import annotations

from typing import Any

from orca_automl.backbones import Backbone, HFEncoderBackbone, TimmBackbone
from orca_automl.embedders._base import Embedder, TokenLayout
from orca_automl.embedders._heads import HEADS, HeadSpec, create_head
from orca_automl.embedders._image import ConvAdapterEmbedder, StemConvEmbedder
from orca_automl.embedders._sequence import (
    Conv1dEmbedder,
    PatchMLPEmbedder,
    PatchTokensEmbedder,
    TabularEmbedder,
)
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry

EMBEDDERS: Registry[type[Embedder]] = Registry("embedder")
for _name, _cls in (
    ("conv1d", Conv1dEmbedder),
    ("patch_mlp", PatchMLPEmbedder),
    ("tabular_linear", TabularEmbedder),
    ("patch_tokens", PatchTokensEmbedder),
    ("stem_conv", StemConvEmbedder),
    ("conv_adapter", ConvAdapterEmbedder),
):
    EMBEDDERS.register(_name)(_cls)

#: The embedder "auto" picks per (modality, backbone kind).
DEFAULT_EMBEDDERS = {
    ("1d", "sequence"): "conv1d",
    ("tabular", "sequence"): "tabular_linear",
    ("2d", "image"): "stem_conv",
    ("2d", "sequence"): "patch_tokens",
}


def compatible_embedders(modality: str, backbone_kind: str | None = None) -> list[str]:
    """Registered embedders that accept `modality` (and feed `backbone_kind`, if given)."""
    return [
        n for n in EMBEDDERS.names()
        if modality in EMBEDDERS.get(n).modalities
        and backbone_kind in (None, EMBEDDERS.get(n).backbone_kind)
    ]


def create_embedder(
    name: str, modality: str, input_shape: tuple[int, ...], backbone: Backbone,
    args: dict[str, Any] | None = None,
) -> Embedder:
    """Build an embedder for this input and backbone, refusing combinations that do not fit."""
    if name == "auto":
        name = DEFAULT_EMBEDDERS.get((modality, backbone.kind), "")
        if not name:
            raise OrcaInputError(
                f"no embedder turns {modality} inputs into a {backbone.kind} backbone's input"
            )
    cls = EMBEDDERS.get(name)
    if modality not in cls.modalities or backbone.kind != cls.backbone_kind:
        fits = ", ".join(compatible_embedders(modality, backbone.kind)) or "none"
        raise OrcaInputError(
            f"embedder {name!r} does not fit {modality} inputs with a {backbone.kind} backbone; "
            f"use one of: {fits}"
        )
    args = dict(args or {})
    try:
        if isinstance(backbone, HFEncoderBackbone):
            common: dict[str, Any] = dict(width=backbone.width, token_norm=backbone.token_norm(),
                                          max_positions=backbone.max_positions)
            if cls is TabularEmbedder:
                return cls(features=input_shape[-1], **common, **args)
            if cls is PatchTokensEmbedder:
                c, h, w = input_shape
                return cls(channels=c, height=h, width_px=w, **common, **args)
            channels = 1 if modality == "tabular" else input_shape[0]
            return cls(channels=channels, length=input_shape[-1], **common, **args)
        if isinstance(backbone, TimmBackbone):
            return cls(channels=input_shape[0], stem=backbone.fresh_stem(),
                       image_size=backbone.image_size, **args)
    except TypeError as exc:
        raise OrcaInputError(f"embedder {name!r}: bad embedder_args ({exc})") from None
    raise OrcaInputError(f"embedder {name!r} cannot feed backbone {backbone.identity}")


__all__ = [
    "DEFAULT_EMBEDDERS",
    "EMBEDDERS",
    "HEADS",
    "Embedder",
    "HeadSpec",
    "TokenLayout",
    "compatible_embedders",
    "create_embedder",
    "create_head",
]
