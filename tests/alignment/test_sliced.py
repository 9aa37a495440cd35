"""Sliced Wasserstein against POT's exact 1D transport."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from orca_automl.alignment import create_metric
from orca_automl.alignment._sliced import wasserstein_1d_squared


@pytest.mark.parametrize(("n", "m"), [(37, 23), (30, 30), (1, 9)])
def test_one_dimension_equals_exact_w2(n: int, m: int) -> None:
    generator = torch.Generator().manual_seed(n + m)
    xs = torch.randn(n, 1, generator=generator)
    xt = 1.5 * torch.randn(m, 1, generator=generator) + 0.7
    metric = create_metric("sliced_wasserstein", n_projections=4)
    metric.fit_source(xs, torch.zeros(n, dtype=torch.long))
    source, target = xs.double().numpy(), xt.double().numpy()
    expected = ot.emd2([], [], ot.dist(source, target), numItermax=10**7)
    assert metric(xt, torch.zeros(m, dtype=torch.long)).item() == pytest.approx(expected, rel=1e-5)


def test_projected_columns_equal_pot_wasserstein_1d() -> None:
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(41, 6, generator=generator, dtype=torch.float64)
    v = torch.randn(17, 6, generator=generator, dtype=torch.float64) * 2 - 1
    expected = [ot.wasserstein_1d(u[:, i].numpy(), v[:, i].numpy(), p=2) for i in range(6)]
    np.testing.assert_allclose(wasserstein_1d_squared(u, v).numpy(), expected, rtol=1e-10)


def test_gradient_matches_finite_differences() -> None:
    generator = torch.Generator().manual_seed(1)
    xs = torch.randn(12, 3, generator=generator)
    xt = torch.randn(9, 3, generator=generator, dtype=torch.float64).requires_grad_()
    labels = torch.zeros(12, dtype=torch.long)

    def distance(target: torch.Tensor) -> torch.Tensor:
        metric = create_metric("sliced_wasserstein", n_projections=16)
        metric.fit_source(xs, labels)  # resets the direction stream: same directions each time
        return metric(target, labels[:9])

    assert torch.autograd.gradcheck(distance, (xt,))


def test_directions_are_seeded_and_redrawn_per_call() -> None:
    generator = torch.Generator().manual_seed(2)
    xs, xt = torch.randn(30, 8, generator=generator), torch.randn(20, 8, generator=generator)
    ys, yt = torch.zeros(30, dtype=torch.long), torch.zeros(20, dtype=torch.long)
    first, second = create_metric("sliced_wasserstein"), create_metric("sliced_wasserstein")
    first.fit_source(xs, ys)
    second.fit_source(xs, ys)
    values = [first(xt, yt).item(), first(xt, yt).item()]
    assert values[0] != values[1]
    assert [second(xt, yt).item(), second(xt, yt).item()] == values
