"""Every registered metric through the same checks: factory, inputs, gradients, training."""

from __future__ import annotations

import pytest
import torch

from orca_automl.alignment import ALIGNMENT_METRICS, AlignmentMetric, create_metric
from orca_automl.errors import OrcaInputError

from .conftest import Clouds

TRAINABLE = [name for name in ALIGNMENT_METRICS if create_metric(name).trains]
#: Metrics that are 0 when target == source ("l2" pairs random points, so it is not).
DIVERGENCES = ["otdd_exact", "otdd_gaussian", "mmd", "sliced_wasserstein"]


def test_registered_names() -> None:
    assert ALIGNMENT_METRICS.names() == [
        "l2",
        "mmd",
        "none",
        "otdd_exact",
        "otdd_gaussian",
        "sliced_wasserstein",
    ]
    assert [n for n in ALIGNMENT_METRICS.names() if n != "none"] == TRAINABLE


def test_unknown_metric_is_refused_with_the_known_names() -> None:
    with pytest.raises(OrcaInputError, match="unknown alignment metric 'nope'.*otdd_exact"):
        create_metric("nope")


def test_unknown_parameter_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(OrcaInputError, match="'otdd_gaussian' has no parameter 'regg'.*reg"):
        create_metric("otdd_gaussian", regg=0.1)
    with pytest.raises(OrcaInputError, match="'none' has no parameter 'reg': valid ones are none"):
        create_metric("none", reg=0.1)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("otdd_gaussian", {"reg": 0}),
        ("otdd_gaussian", {"reg": "0.1"}),
        ("otdd_gaussian", {"label_weight": -1.0}),
        ("otdd_gaussian", {"max_iter": True}),
        ("otdd_gaussian", {"tol": 0.0}),
        ("otdd_exact", {"outer": "greedy"}),
        ("otdd_exact", {"max_points_per_class": 0}),
        ("otdd_exact", {"seed": 1.5}),
        ("mmd", {"bandwidth_scales": []}),
        ("mmd", {"bandwidth_scales": "1"}),
        ("mmd", {"bandwidth_scales": [1.0, -2.0]}),
        ("sliced_wasserstein", {"n_projections": 0}),
        ("l2", {"seed": -1}),
    ],
)
def test_bad_parameter_values_give_one_actionable_line(
    name: str, params: dict[str, object]
) -> None:
    with pytest.raises(OrcaInputError) as error:
        create_metric(name, **params)
    message = str(error.value)
    assert "\n" not in message and name in message and next(iter(params)) in message


def test_parameters_are_kept() -> None:
    metric = create_metric("otdd_exact", outer="exact", reg=0.05, max_points_per_class=64)
    assert (metric.outer, metric.reg, metric.max_points_per_class) == ("exact", 0.05, 64)  # type: ignore[attr-defined]
    assert create_metric("mmd", bandwidth_scales=[1, 4]).bandwidth_scales == (1.0, 4.0)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", TRAINABLE)
def test_bad_batches_are_refused(clouds: Clouds, name: str) -> None:
    metric = create_metric(name)
    xs, ys = clouds(20, 4, 2)
    with pytest.raises(OrcaInputError, match="labels"):
        metric.fit_source(xs, ys.float())
    metric.fit_source(xs, ys)
    with pytest.raises(OrcaInputError, match="5 dims but the source has 4"):
        metric(torch.randn(10, 5), ys[:10])
    with pytest.raises(OrcaInputError, match="non-empty float tensor"):
        metric(torch.randn(0, 4), ys[:0])


@pytest.mark.parametrize("name", ALIGNMENT_METRICS.names())
def test_scalar_with_gradients_into_the_target_only(clouds: Clouds, name: str) -> None:
    xs, ys = clouds(40, 5, 3, seed=1)
    xt, yt = clouds(30, 5, 2, shift=1.0, seed=2)
    source = xs.clone().requires_grad_()
    metric: AlignmentMetric = create_metric(name)
    metric.fit_source(source, ys)
    target = xt.clone().requires_grad_()
    value = metric(target, yt)
    assert value.shape == () and torch.isfinite(value) and value.dtype == torch.float32
    if not metric.trains:
        assert value.item() == 0.0
        return
    assert value.item() > 0.0
    value.backward()
    assert source.grad is None
    assert target.grad is not None and torch.isfinite(target.grad).all()
    assert target.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "params"),
    [(name, {"outer": outer}) for name in DIVERGENCES[:2] for outer in ("sinkhorn", "exact")]
    + [(name, {}) for name in DIVERGENCES[2:]],
)
def test_zero_at_the_source_and_positive_elsewhere(
    clouds: Clouds, name: str, params: dict[str, object]
) -> None:
    xs, ys = clouds(40, 5, 3, seed=3)
    metric = create_metric(name, **params)
    metric.fit_source(xs, ys)
    shifted = metric(xs + 0.5, ys).item()
    assert shifted > 0.01
    assert abs(metric(xs, ys).item()) < 1e-4 * shifted


@pytest.mark.parametrize("name", TRAINABLE)
def test_adam_on_target_features_reduces_the_distance(clouds: Clouds, name: str) -> None:
    xs, ys = clouds(40, 5, 3, seed=4)
    xt, yt = clouds(40, 5, 3, shift=3.0, seed=5)
    metric = create_metric(name)
    metric.fit_source(xs, ys)
    target = xt.clone().requires_grad_()
    optimizer = torch.optim.Adam([target], lr=0.1)
    start = metric(target, yt).item()
    for _ in range(150):
        optimizer.zero_grad()
        metric(target, yt).backward()
        optimizer.step()
    with torch.no_grad():
        end = sum(metric(target, yt).item() for _ in range(5)) / 5
    # Paired L2 cannot go below the source's own spread (random pairs); the others reach ~0.
    assert end < (0.5 if name == "l2" else 0.1) * start


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", TRAINABLE)
def test_cuda_matches_cpu(clouds: Clouds, name: str) -> None:
    xs, ys = clouds(50, 6, 3, seed=6)
    xt, yt = clouds(40, 6, 3, shift=0.8, seed=7)
    values = []
    for device in ("cpu", "cuda"):
        metric = create_metric(name)
        metric.fit_source(xs.to(device), ys.to(device))
        target = xt.to(device).requires_grad_()
        value = metric(target, yt.to(device))
        value.backward()
        assert value.device.type == device and target.grad is not None
        values.append((value.item(), target.grad.cpu()))
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-3)
    torch.testing.assert_close(values[1][1], values[0][1], rtol=1e-2, atol=1e-4)
