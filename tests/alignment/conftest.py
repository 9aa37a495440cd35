"""Small labelled feature clouds shared by the alignment tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

Clouds = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def _clouds(
    n: int = 40, d: int = 6, k: int = 3, shift: float = 0.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """n float32 points in d dims around k class centres (every class present), plus labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    centres = 2.0 * torch.randn(k, d, generator=generator)
    features = centres[labels] + torch.randn(n, d, generator=generator) + shift
    return features, labels


@pytest.fixture
def clouds() -> Clouds:
    """Builder `clouds(n, d, k, shift, seed) -> (features, labels)`."""
    return _clouds
