"""The label-structure term against explicit scatter matrices, its bounds and invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orca_automl.alignment import label_structure_loss
from orca_automl.errors import OrcaInputError

from .conftest import Clouds


def scatter_ratio(features: np.ndarray, labels: np.ndarray) -> float:
    """-tr(S_between) / tr(S_total) from the d x d scatter matrices, in float64."""
    x = features.astype(np.float64)
    mu = x.mean(0)
    s_total = (x - mu).T @ (x - mu)
    s_between = np.zeros_like(s_total)
    for c in np.unique(labels):
        gap = (x[labels == c].mean(0) - mu)[:, None]
        s_between += (labels == c).sum() * gap @ gap.T
    return float(-np.trace(s_between) / np.trace(s_total))


@pytest.mark.parametrize(("n", "d", "k", "seed"), [(40, 6, 3, 0), (37, 3, 5, 1), (200, 16, 2, 2)])
def test_matches_the_scatter_matrices(clouds: Clouds, n: int, d: int, k: int, seed: int) -> None:
    features, labels = clouds(n, d, k, seed=seed)
    expected = scatter_ratio(features.numpy(), labels.numpy())
    assert -1.0 < expected < 0.0
    value = label_structure_loss(features.double(), labels)
    assert value.dtype == torch.float64 and value.shape == ()
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert label_structure_loss(features, labels).item() == pytest.approx(expected, rel=1e-5)


def test_unordered_and_sparse_label_values(clouds: Clouds) -> None:
    features, labels = clouds(30, 4, 3, seed=3)
    renamed = torch.tensor([7, -2, 40])[labels]
    assert label_structure_loss(features, renamed).item() == pytest.approx(
        scatter_ratio(features.numpy(), labels.numpy()), rel=1e-5
    )


def test_exactly_zero_without_label_structure(clouds: Clouds) -> None:
    features, labels = clouds(20, 5, 3, seed=4)
    assert label_structure_loss(features, torch.zeros(20, dtype=torch.long)).item() == 0.0
    # Both classes have mean (2, 3): all the variance is within classes.
    equal_means = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 6.0], [4.0, 0.0]])
    assert label_structure_loss(equal_means, torch.tensor([0, 0, 1, 1])).item() == 0.0
    constant = torch.full((8, 3), 0.1)
    value = label_structure_loss(constant, torch.arange(8) % 2)
    assert value.item() == pytest.approx(0.0, abs=1e-6)


def test_near_zero_for_random_labels_on_many_samples() -> None:
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(4000, 8, generator=generator)
    labels = torch.randint(4, (4000,), generator=generator)
    # Expected share under random labels: (k - 1) / (n - 1) ~ 0.00075.
    assert -0.005 < label_structure_loss(features, labels).item() <= 0.0


def test_near_minus_one_for_tight_separated_clusters(clouds: Clouds) -> None:
    features, labels = clouds(60, 5, 4, seed=6)
    centres = torch.stack([features[labels == c].mean(0) for c in range(4)])
    noise = torch.randn(60, 5, generator=torch.Generator().manual_seed(11))
    tight = centres[labels] * 100.0 + 0.01 * noise
    assert label_structure_loss(tight, labels).item() == pytest.approx(-1.0, abs=1e-6)
    collapsed = centres[labels]
    assert label_structure_loss(collapsed, labels).item() == pytest.approx(-1.0, abs=1e-6)


def test_bounded_in_minus_one_zero(clouds: Clouds) -> None:
    for seed in range(20):
        features, labels = clouds(12, 3, 4, seed=seed)
        value = label_structure_loss(features * 10.0 ** (seed % 7 - 3), labels).item()
        assert -1.0 <= value <= 0.0


def test_invariant_to_shift_scale_and_rotation(clouds: Clouds) -> None:
    features, labels = clouds(50, 6, 3, seed=7)
    reference = label_structure_loss(features, labels).item()
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(8)))
    for moved in (features + 5.0, features * 1e-3, features * 1e3, features @ rotation):
        assert label_structure_loss(moved, labels).item() == pytest.approx(reference, rel=1e-5)


def test_gradient_separates_the_classes(clouds: Clouds) -> None:
    features, labels = clouds(40, 4, 3, seed=9)
    noise = torch.randn(40, 4, generator=torch.Generator().manual_seed(10))
    features = (features * 0.1 + noise).requires_grad_()
    optimizer = torch.optim.Adam([features], lr=0.05)
    start = label_structure_loss(features, labels)
    start.backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0
    for _ in range(50):
        optimizer.zero_grad()
        label_structure_loss(features, labels).backward()
        optimizer.step()
    assert label_structure_loss(features, labels).item() < start.item() - 0.5


def test_bad_batches_are_refused() -> None:
    with pytest.raises(OrcaInputError, match="labels"):
        label_structure_loss(torch.randn(4, 2), torch.zeros(4))
    with pytest.raises(OrcaInputError, match="non-empty float tensor"):
        label_structure_loss(torch.randn(4, 2, 3), torch.zeros(4, dtype=torch.long))
