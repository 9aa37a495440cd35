"""MMD against a direct double loop over the pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from orca_automl.alignment import create_metric

from .conftest import Clouds


def mmd_by_loops(xs: np.ndarray, xt: np.ndarray, scales: tuple[float, ...]) -> float:
    pooled = np.concatenate([xs, xt])
    pairs = [
        np.sum((pooled[i] - pooled[j]) ** 2)
        for i, j in itertools.product(range(len(pooled)), repeat=2)
        if i != j
    ]
    bandwidth = np.mean(pairs)

    def kernel_mean(a: np.ndarray, b: np.ndarray) -> float:
        total = 0.0
        for x, y in itertools.product(a, b):
            distance = np.sum((x - y) ** 2)
            total += np.mean([np.exp(-distance / (s * bandwidth)) for s in scales])
        return total / (len(a) * len(b))

    return kernel_mean(xs, xs) + kernel_mean(xt, xt) - 2 * kernel_mean(xs, xt)


@pytest.mark.parametrize("scales", [(0.5, 1.0, 2.0), (0.2,)])
def test_mmd_equals_the_double_loop(clouds: Clouds, scales: tuple[float, ...]) -> None:
    xs, ys = clouds(25, 4, 2, seed=1)
    xt, yt = clouds(18, 4, 3, shift=0.8, seed=2)
    metric = create_metric("mmd", bandwidth_scales=scales)
    metric.fit_source(xs, ys)
    expected = mmd_by_loops(xs.double().numpy(), xt.double().numpy(), scales)
    assert metric(xt, yt).item() == pytest.approx(expected, rel=1e-5)


def test_mmd_ignores_labels(clouds: Clouds) -> None:
    xs, ys = clouds(25, 4, 2, seed=3)
    xt, yt = clouds(20, 4, 2, shift=0.5, seed=4)
    metric = create_metric("mmd")
    metric.fit_source(xs, ys)
    assert metric(xt, yt).item() == metric(xt, (yt + 1) % 2).item()
