"""OTDD against independent POT/scipy computations on small clouds."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import ot
import pytest
import scipy.linalg
import torch

from orca_automl.alignment import _otdd, _transport, create_metric
from orca_automl.alignment._label_distances import bures_distances, gaussian_classes

from .conftest import Clouds


def exact_label_distances(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray
) -> np.ndarray:
    """W2^2 between class clouds, one `ot.emd2` per class pair."""
    return np.array(
        [
            [
                ot.emd2([], [], ot.dist(xa[ya == p], xb[yb == q]), numItermax=10**7)
                for q in np.unique(yb)
            ]
            for p in np.unique(ya)
        ]
    )


def bures_label_distances(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray
) -> np.ndarray:
    """Closed-form Bures-Wasserstein with scipy's sqrtm (float64)."""

    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.mean(0), np.cov(x, rowvar=False, bias=True)

    out = np.zeros((len(np.unique(ya)), len(np.unique(yb))))
    for i, p in enumerate(np.unique(ya)):
        for j, q in enumerate(np.unique(yb)):
            (m1, s1), (m2, s2) = stats(xa[ya == p]), stats(xb[yb == q])
            root = scipy.linalg.sqrtm(s1)
            cross = np.real(scipy.linalg.sqrtm(root @ s2 @ root))
            out[i, j] = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross)
    return out


def augmented_cost(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """||x - x'||^2 + W[y, y'] built explicitly, point by point."""
    rows = np.searchsorted(np.unique(ya), ya)
    cols = np.searchsorted(np.unique(yb), yb)
    return ot.dist(xa, xb) + w[rows][:, cols]


def as_numpy(*tensors: torch.Tensor) -> list[np.ndarray]:
    return [t.detach().double().numpy() if t.is_floating_point() else t.numpy() for t in tensors]


@pytest.mark.parametrize(
    ("name", "label_distances"),
    [("otdd_exact", exact_label_distances), ("otdd_gaussian", bures_label_distances)],
)
def test_exact_outer_equals_pot_on_explicit_augmented_cost(
    clouds: Clouds, name: str, label_distances: object
) -> None:
    xs, ys = clouds(45, 5, 3, seed=1)
    xt, yt = clouds(36, 5, 4, shift=0.7, seed=2)
    metric = create_metric(name, outer="exact")
    metric.fit_source(xs, ys)
    xs_, ys_, xt_, yt_ = as_numpy(xs, ys, xt, yt)
    cost = augmented_cost(xs_, ys_, xt_, yt_, label_distances(xs_, ys_, xt_, yt_))  # type: ignore[operator]
    expected = ot.emd2([], [], cost, numItermax=10**7)
    assert metric(xt, yt).item() == pytest.approx(expected, rel=1e-5)


def test_label_weight_scales_the_label_term(clouds: Clouds) -> None:
    xs, ys = clouds(30, 4, 3, seed=3)
    xt, yt = clouds(24, 4, 2, shift=0.5, seed=4)
    metric = create_metric("otdd_exact", outer="exact", label_weight=2.5)
    metric.fit_source(xs, ys)
    xs_, ys_, xt_, yt_ = as_numpy(xs, ys, xt, yt)
    w = 2.5 * exact_label_distances(xs_, ys_, xt_, yt_)
    expected = ot.emd2([], [], augmented_cost(xs_, ys_, xt_, yt_, w), numItermax=10**7)
    assert metric(xt, yt).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("reg", [0.1, 0.05])
def test_sinkhorn_outer_equals_debiased_pot_sinkhorn(clouds: Clouds, reg: float) -> None:
    xs, ys = clouds(40, 6, 3, seed=5)
    xt, yt = clouds(32, 6, 3, shift=0.5, seed=6)
    metric = create_metric("otdd_exact", reg=reg)
    metric.fit_source(xs, ys)
    xs_, ys_, xt_, yt_ = as_numpy(xs, ys, xt, yt)
    c_st = augmented_cost(xs_, ys_, xt_, yt_, exact_label_distances(xs_, ys_, xt_, yt_))
    c_ss = augmented_cost(xs_, ys_, xs_, ys_, exact_label_distances(xs_, ys_, xs_, ys_))
    c_tt = augmented_cost(xt_, yt_, xt_, yt_, exact_label_distances(xt_, yt_, xt_, yt_))
    scale = c_ss.max()

    def entropic(cost: np.ndarray) -> float:
        return ot.sinkhorn2([], [], cost / scale, reg, numItermax=100_000, stopThr=1e-10) * scale

    expected = entropic(c_st) - 0.5 * entropic(c_ss) - 0.5 * entropic(c_tt)
    assert metric(xt, yt).item() == pytest.approx(expected, rel=1e-4)


def test_overflowing_scalings_fall_back_to_the_log_domain(clouds: Clouds) -> None:
    xs, ys = clouds(30, 4, 2, seed=7)
    xt, yt = clouds(25, 4, 2, shift=3.0, seed=8)
    xt[0] += 40.0  # a far outlier: its kernel column underflows at this regularisation
    reg = 0.01
    metric = create_metric("otdd_gaussian", reg=reg, tol=1e-8, max_iter=20_000)
    metric.fit_source(xs, ys)
    with mock.patch.object(
        _transport, "_log_sinkhorn", wraps=_transport._log_sinkhorn
    ) as log_solver:
        # float64 targets: at this regularisation float32 logits reach ~1e4 and the plan
        # itself carries ~1e-3 relative rounding, which would hide solver errors.
        value = metric(xt.double(), yt).item()
    assert log_solver.call_count == 1
    xs_, ys_, xt_, yt_ = as_numpy(xs, ys, xt, yt)
    c_st = augmented_cost(xs_, ys_, xt_, yt_, bures_label_distances(xs_, ys_, xt_, yt_))
    c_ss = augmented_cost(xs_, ys_, xs_, ys_, bures_label_distances(xs_, ys_, xs_, ys_))
    c_tt = augmented_cost(xt_, yt_, xt_, yt_, bures_label_distances(xt_, yt_, xt_, yt_))
    scale = c_ss.max()

    def entropic(cost: np.ndarray) -> float:
        return (
            ot.sinkhorn2(
                [], [], cost / scale, reg, method="sinkhorn_log", numItermax=100_000, stopThr=1e-12
            )
            * scale
        )

    expected = entropic(c_st) - 0.5 * entropic(c_ss) - 0.5 * entropic(c_tt)
    assert value == pytest.approx(expected, rel=1e-6)


def test_gaussian_label_distances_match_scipy_sqrtm(clouds: Clouds) -> None:
    xa, ya = clouds(90, 5, 3, seed=9)
    xb, yb = clouds(80, 5, 2, shift=1.0, seed=10)
    got = bures_distances(gaussian_classes(xa, ya, 3), gaussian_classes(xb, yb, 2))
    expected = bures_label_distances(*as_numpy(xa, ya, xb, yb))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)
    same = bures_distances(gaussian_classes(xa, ya, 3))
    np.testing.assert_allclose(
        same.numpy(), bures_label_distances(*as_numpy(xa, ya, xa, ya)), rtol=1e-4, atol=1e-4
    )
    assert torch.all(same.diagonal() == 0)


def test_gaussian_label_distances_are_exact_for_rank_deficient_classes() -> None:
    # Classes with fewer points than dims: a single point (covariance 0) and two points
    # (rank 1). W2^2(delta_x, N(mu, S)) = ||x - mu||^2 + tr S, and two Diracs: ||x - y||^2.
    generator = torch.Generator().manual_seed(11)
    points = torch.randn(5, 8, generator=generator)
    classes = gaussian_classes(points[:3], torch.tensor([0, 1, 1]), 2)
    other = gaussian_classes(points[3:], torch.tensor([0, 0]), 1)
    got = bures_distances(classes, other)
    assert torch.isfinite(got).all()
    pair = points[3:]
    spread = (pair - pair.mean(0)).square().sum() / 2
    assert got[0, 0].item() == pytest.approx(
        ((points[0] - pair.mean(0)).square().sum() + spread).item(), rel=1e-5
    )
    # Rank-1 vs rank-1 Gaussians: compare with a float64 eigen computation of the formula.
    s1 = np.cov(points[1:3].double().numpy(), rowvar=False, bias=True)
    s2 = np.cov(pair.double().numpy(), rowvar=False, bias=True)
    vals, vecs = np.linalg.eigh(s1)
    root = vecs @ np.diag(np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    fidelity = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    means = points[1:3].double().mean(0) - pair.double().mean(0)
    expected = means.square().sum().item() + np.trace(s1) + np.trace(s2) - 2 * fidelity
    assert got[1, 0].item() == pytest.approx(expected, rel=1e-4)
    single = bures_distances(gaussian_classes(points[:2], torch.tensor([0, 1]), 2))
    assert single[0, 1].item() == pytest.approx(
        (points[0] - points[1]).square().sum().item(), rel=1e-5
    )


def test_gaussian_label_distances_repeat_bit_for_bit_on_two_threads() -> None:
    # Class QRs and pair eigensolvers run side by side in a thread pool. Unless each pool
    # thread is held to one torch thread, concurrent MKL calls get timing-dependent thread
    # teams and the low bits change from call to call, so seeded alignment runs did not
    # repeat. Sizes as in an alignment step on breast_cancer: 384 dims, batch 64, 2 classes
    # (the class sizes matter: with 28 and 36 rows, 20 calls without the fix gave 2 results).
    generator = torch.Generator().manual_seed(5)
    source = gaussian_classes(
        torch.randn(600, 384, generator=generator), torch.arange(600) % 10, 10
    )
    inputs = torch.randn(64, 384, generator=generator)
    labels = (torch.arange(64) >= 28).long()  # classes of 28 and 36 rows
    weight = torch.randn(384, 384, generator=generator) / 384**0.5
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(20):
            target = inputs @ weight  # a multi-threaded op between calls, as a model's forward
            classes = gaussian_classes(target, labels, 2)
            distances = bures_distances(source, classes)
            runs.append((classes.factors.numpy().tobytes(), distances.numpy().tobytes()))
    finally:
        torch.set_num_threads(threads)
    assert len(set(runs)) == 1


@pytest.mark.parametrize("name", ["otdd_exact", "otdd_gaussian"])
def test_source_side_is_computed_once(clouds: Clouds, name: str) -> None:
    xs, ys = clouds(40, 5, 3, seed=12)
    xt, yt = clouds(30, 5, 3, shift=0.5, seed=13)
    metric: Any = create_metric(name)
    with mock.patch.object(
        type(metric), "_label_distances", autospec=True, side_effect=type(metric)._label_distances
    ) as label_distances:
        metric.fit_source(xs, ys)
        assert label_distances.call_count == 1  # source vs itself
        with mock.patch.object(
            _otdd, "symmetric_sinkhorn", wraps=_otdd.symmetric_sinkhorn
        ) as self_transport:
            first, second = metric(xt, yt), metric(xt, yt)
    assert self_transport.call_count == 2  # the target self-term only, once per call
    calls = label_distances.call_args_list[1:]
    assert len(calls) == 4  # source-target and target-target, per call
    assert not any(c.args[1] is metric.source_stats_ and c.args[2] is None for c in calls)
    assert first.item() == second.item()


def test_exact_outer_gradient_is_the_plan_weighted_displacement(clouds: Clouds) -> None:
    # With the plan and label terms fixed, d/dx_j sum_ij P_ij C_ij = 2 sum_i P_ij (x_j - x_i).
    xs, ys = clouds(20, 3, 2, seed=14)
    xt, yt = clouds(15, 3, 2, shift=0.4, seed=15)
    metric = create_metric("otdd_exact", outer="exact")
    metric.fit_source(xs, ys)
    target = xt.clone().requires_grad_()
    metric(target, yt).backward()
    xs_, ys_, xt_, yt_ = as_numpy(xs, ys, xt, yt)
    cost = augmented_cost(xs_, ys_, xt_, yt_, exact_label_distances(xs_, ys_, xt_, yt_))
    plan = ot.emd([], [], cost, numItermax=10**7)
    expected = 2 * (plan.sum(0)[:, None] * xt_ - plan.T @ xs_)
    assert target.grad is not None
    np.testing.assert_allclose(target.grad.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_subsampled_classes_are_reproducible(clouds: Clouds) -> None:
    xs, ys = clouds(60, 4, 2, seed=16)
    xt, yt = clouds(50, 4, 2, shift=0.5, seed=17)
    small = create_metric("otdd_exact", max_points_per_class=8)
    small.fit_source(xs, ys)
    full = create_metric("otdd_exact", max_points_per_class=30)
    full.fit_source(xs, ys)
    assert small(xt, yt).item() == small(xt, yt).item()
    # Classes of 25-30 points are not subsampled at 30: the value is the exact one.
    exact = create_metric("otdd_exact", max_points_per_class=10_000)
    exact.fit_source(xs, ys)
    assert full(xt, yt).item() == pytest.approx(exact(xt, yt).item(), rel=1e-6)
    assert small(xt, yt).item() != pytest.approx(exact(xt, yt).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["otdd_exact", "otdd_gaussian"])
@pytest.mark.parametrize(
    ("outer", "reg", "shift"),
    [("sinkhorn", 0.1, 0.5), ("sinkhorn", 0.01, 3.0), ("exact", 0.1, 0.5)],
)
def test_value_only_path_equals_the_differentiable_one(
    clouds: Clouds, name: str, outer: str, reg: float, shift: float
) -> None:
    """Under no_grad <P, C> is read from the kernel; with a gradient, through the transport
    matmul. Both read the same plans (reg 0.01 at shift 3 also takes the log-domain solver)."""
    xs, ys = clouds(40, 6, 3, seed=11)
    xt, yt = clouds(32, 6, 3, shift=shift, seed=12)
    metric = create_metric(name, outer=outer, reg=reg, tol=1e-8, max_iter=20_000)
    metric.fit_source(xs, ys)
    target = xt.double().requires_grad_()
    with_graph = metric(target, yt)
    with torch.no_grad():
        value_only = metric(target, yt)
    assert with_graph.requires_grad and not value_only.requires_grad
    assert value_only.item() == pytest.approx(with_graph.item(), rel=1e-9)
