"""Dimensionality alignment: input embedders and output heads, one registry each.

Embedders are registered where they are defined (`_sequence.py`, `_image.py`), each with an
`EmbedderInfo`; heads likewise (`_heads.py`).

Example:
    >>> from orca_automl.embedders import compatible_embedders, default_embedder, embedder_defaults
    >>> compatible_embedders("1d")
    ['conv1d', 'patch_mlp']
    >>> default_embedder("1d", "sequence"), embedder_defaults("conv1d")
    ('conv1d', {'target_seq_len': 64, 'instance_norm': False})
"""

from __future__ import annotations

from orca_automl.embedders import _image, _sequence  # noqa: F401  (registration)
from orca_automl.embedders._base import Embedder, TokenLayout
from orca_automl.embedders._heads import HEADS, HeadSpec, create_head
from orca_automl.embedders._registry import (
    EMBEDDERS,
    EmbedderInfo,
    compatible_embedders,
    create_embedder,
    default_embedder,
    embedder_defaults,
)

__all__ = [
    "EMBEDDERS",
    "HEADS",
    "EmbedderInfo",
    "Embedder",
    "HeadSpec",
    "TokenLayout",
    "compatible_embedders",
    "create_embedder",
    "create_head",
    "default_embedder",
    "embedder_defaults",
]
