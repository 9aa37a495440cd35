"""The embedder registry, its one factory `create_embedder`, and what "auto" picks.

Each embedder class is registered where it is defined, with an `EmbedderInfo` holding what
the search must know without building it: the modalities it accepts, the backbone kind it
feeds, its argument defaults and where it is the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orca_automl.backbones import Backbone
from orca_automl.backbones._registry import BACKBONE_KINDS
from orca_automl.embedders._base import Embedder
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry


@dataclass(frozen=True)
class EmbedderInfo:
    """What is known of a registered embedder without building it.

    Attributes:
        modalities: task modalities it accepts ("1d", "2d", "tabular").
        backbone_kind: the kind of backbone it feeds ("sequence" or "image").
        defaults: its own argument defaults, under the user's embedder_args (the only place
            they are written, so the search can show what "auto" resolves to).
        default_for: modalities for which `embedder: auto` picks it with a backbone of
            `backbone_kind`.
    """

    modalities: tuple[str, ...]
    backbone_kind: str
    defaults: Mapping[str, Any] = field(hash=False)
    default_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backbone_kind not in BACKBONE_KINDS:
            raise ValueError(
                f"embedder backbone_kind {self.backbone_kind!r}: choose one of {BACKBONE_KINDS}"
            )
        if not set(self.default_for) <= set(self.modalities):
            raise ValueError(
                f"an embedder can only be the default for modalities it accepts: "
                f"default_for {self.default_for} is not within {self.modalities}"
            )
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


EMBEDDERS: Registry[type[Embedder], EmbedderInfo] = Registry("embedder", EmbedderInfo)


def compatible_embedders(modality: str, backbone_kind: str | None = None) -> list[str]:
    """Registered embedders that accept `modality` (and feed `backbone_kind`, if given)."""
    return [
        n for n in EMBEDDERS.names()
        if modality in EMBEDDERS.info(n).modalities
        and backbone_kind in (None, EMBEDDERS.info(n).backbone_kind)
    ]


def default_embedder(modality: str, backbone_kind: str) -> str | None:
    """The embedder `embedder: auto` picks for `modality` inputs into a `backbone_kind` body
    (None if none claims it).

    Example:
        >>> default_embedder("2d", "sequence")
        'patch_tokens'
    """
    claims = [
        n for n in EMBEDDERS.names()
        if modality in EMBEDDERS.info(n).default_for
        and EMBEDDERS.info(n).backbone_kind == backbone_kind
    ]
    if len(claims) > 1:
        raise OrcaInputError(
            f"embedders {', '.join(claims)} all claim to be the default for {modality} inputs "
            f"into a {backbone_kind} backbone: name one in model.embedder"
        )
    return claims[0] if claims else None


def embedder_defaults(name: str) -> dict[str, Any]:
    """The registered embedder's own argument defaults (a copy)."""
    return dict(EMBEDDERS.info(name).defaults)


def create_embedder(
    name: str, modality: str, input_shape: tuple[int, ...], backbone: Backbone,
    args: dict[str, Any] | None = None,
) -> Embedder:
    """Build an embedder for this input and backbone, refusing combinations that do not fit."""
    if name == "auto":
        name = default_embedder(modality, backbone.kind) or ""
        if not name:
            raise OrcaInputError(
                f"no embedder turns {modality} inputs into a {backbone.kind} backbone's input"
            )
    cls = EMBEDDERS.get(name)
    info = EMBEDDERS.info(name)
    if modality not in info.modalities or backbone.kind != info.backbone_kind:
        fits = ", ".join(compatible_embedders(modality, backbone.kind)) or "none"
        raise OrcaInputError(
            f"embedder {name!r} does not fit {modality} inputs with a {backbone.kind} backbone; "
            f"use one of: {fits}"
        )
    try:
        return cls.from_backbone(backbone, input_shape, **{**info.defaults, **(args or {})})
    except TypeError as exc:
        raise OrcaInputError(f"embedder {name!r}: bad embedder_args ({exc})") from None
