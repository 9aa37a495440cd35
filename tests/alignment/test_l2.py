"""Paired L2: random source partners, fresh per call, reproducible per seed."""

from __future__ import annotations

import pytest
import torch

from orca_automl.alignment import create_metric


def test_constant_source_gives_the_mean_squared_distance_to_it() -> None:
    source = torch.ones(10, 4) * torch.tensor([1.0, -2.0, 0.5, 3.0])
    target = torch.randn(25, 4, generator=torch.Generator().manual_seed(0))  # more than the source
    metric = create_metric("l2")
    metric.fit_source(source, torch.zeros(10, dtype=torch.long))
    expected = (target - source[0]).square().sum(1).mean().item()
    assert metric(target, torch.zeros(25, dtype=torch.long)).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_pairs_are_distinct_source_points_and_reproducible() -> None:
    # Source point i is i * e_0: each target point's squared distance reveals its partner.
    source = torch.zeros(50, 2)
    source[:, 0] = torch.arange(50.0)
    target = torch.zeros(20, 2)
    labels = torch.zeros(50, dtype=torch.long)
    metric = create_metric("l2", seed=3)
    metric.fit_source(source, labels)
    partners = []
    for _ in range(2):
        target_ = target.clone().requires_grad_()
        metric(target_, labels[:20]).backward()
        assert target_.grad is not None
        partners.append(tuple((-target_.grad[:, 0] * 20 / 2).round().long().tolist()))
    assert all(len(set(p)) == 20 for p in partners)  # without replacement
    assert partners[0] != partners[1]  # redrawn per call
    metric.fit_source(source, labels)
    target_ = target.clone().requires_grad_()
    metric(target_, labels[:20]).backward()
    assert target_.grad is not None
    assert tuple((-target_.grad[:, 0] * 10).round().long().tolist()) == partners[0]
