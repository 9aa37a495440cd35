"""The backbone registry, its one factory `create_backbone`, and what "auto" picks.

Each builder is registered where it is defined, with a `BackboneInfo` saying what the search
must know before any weights load: the backbone's kind (which embedders fit it) and the task
modalities it is the default for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from orca_automl.backbones._base import Backbone
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry

#: The kinds of body an embedder can feed.
BACKBONE_KINDS = ("sequence", "image")


@dataclass(frozen=True)
class BackboneInfo:
    """What is known of a registered backbone without building it.

    Attributes:
        kind: "sequence" or "image" (the `kind` of the backbone the builder returns).
        default_for: task modalities for which `backbone: auto` picks this backbone.
    """

    kind: str
    default_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in BACKBONE_KINDS:
            raise ValueError(f"backbone kind {self.kind!r}: choose one of {BACKBONE_KINDS}")


class BackboneBuilder(Protocol):
    """Builds a backbone; `seed` seeds random weights when `pretrained` is False."""

    def __call__(self, pretrained: bool, seed: int, **args: Any) -> Backbone: ...


BACKBONES: Registry[BackboneBuilder, BackboneInfo] = Registry("backbone", BackboneInfo)


def create_backbone(
    name: str, args: dict[str, Any] | None = None, pretrained: bool = True, seed: int = 0
) -> Backbone:
    """Build a registered backbone; bad arguments become one actionable line."""
    builder = BACKBONES.get(name)
    try:
        return builder(pretrained=pretrained, seed=seed, **(args or {}))
    except TypeError as exc:
        raise OrcaInputError(f"backbone {name!r}: bad backbone_args ({exc})") from None


def default_backbone(modality: str) -> str | None:
    """The backbone `backbone: auto` picks for tasks of `modality` (None if none claims it).

    Example:
        >>> default_backbone("2d")
        'efficientnet_lite0'
    """
    claims = [n for n in BACKBONES.names() if modality in BACKBONES.info(n).default_for]
    if len(claims) > 1:
        raise OrcaInputError(
            f"backbones {', '.join(claims)} all claim to be the default for {modality} tasks: "
            "name one in model.backbone"
        )
    return claims[0] if claims else None


def backbone_kind(name: str) -> str:
    """The kind of the registered backbone `name`, known without loading weights."""
    return BACKBONES.info(name).kind
