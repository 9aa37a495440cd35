"""Promotion of the top-K short trials to full training."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from orca_automl.config import OrcaConfig
from orca_automl.evaluation import Evaluation
from orca_automl.search import (
    Stage,
    TrialPlan,
    TrialRecord,
    TrialResult,
    full_cost_estimate,
    select_promotions,
)


def _config(lr: float) -> OrcaConfig:
    return OrcaConfig().with_overrides({"refine.lr": lr, "align.steps": 40, "refine.steps": 400})


def _short(number: int, score: float | None, lr: float, cost: float = 1.0,
           state: TrialState = TrialState.COMPLETE, val_loss: float | None = None,
           default: bool = False, step_seconds: float = 0.0,
           folds: tuple[int, ...] = ()) -> TrialRecord:
    val = None if val_loss is None else Evaluation("accuracy", score or 0.0, score or 0.0, val_loss)
    return TrialRecord(
        number=number, state=state, params={}, distributions={},
        values=(score, cost) if score is not None else None, started=None,
        plan=TrialPlan(Stage.SHORT, config=_config(lr), engine_default=default, folds=folds),
        result=TrialResult(device_seconds=20.0, val=val, step_seconds=step_seconds),
    )


def _full(number: int, source: TrialRecord, state: TrialState = TrialState.COMPLETE) -> TrialRecord:
    return TrialRecord(
        number=number, state=state, params={}, distributions={}, values=(0.9, 1.0), started=None,
        plan=TrialPlan(Stage.FULL, config=source.plan.config, promoted_from=source.number),
        result=TrialResult(),
    )


def test_top_k_by_score_ties_to_lower_cost() -> None:
    records = [_short(0, 0.7, 1e-4), _short(1, 0.9, 2e-4, cost=2.0), _short(2, 0.9, 3e-4, cost=1.0),
               _short(3, 0.8, 4e-4), _short(4, None, 5e-4, state=TrialState.PRUNED)]
    picks = select_promotions(records, top_k=2)
    assert [p.source.number for p in picks] == [2, 1]
    assert [p.source.number for p in select_promotions(records, top_k=10)] == [2, 1, 3, 0]


def test_no_double_promotion_but_failed_promotions_are_retried() -> None:
    a, b, c = _short(0, 0.9, 1e-4), _short(1, 0.8, 2e-4), _short(2, 0.7, 3e-4)
    records = [a, b, c, _full(3, a)]
    assert [p.source.number for p in select_promotions(records, top_k=2)] == [1]
    records.append(_full(4, b, state=TrialState.FAIL))
    assert [p.source.number for p in select_promotions(records, top_k=2)] == [1]
    records.append(_full(5, b))
    assert select_promotions(records, top_k=2) == []


def test_the_same_configuration_counts_once() -> None:
    twin_a, twin_b, other = _short(0, 0.9, 1e-4), _short(1, 0.9, 1e-4), _short(2, 0.8, 2e-4)
    picks = select_promotions([twin_a, twin_b, other], top_k=2)
    assert [p.source.number for p in picks] == [0, 2]
    assert select_promotions([twin_a, twin_b, other, _full(3, twin_b)], top_k=1) == []


def test_full_cost_estimate_scales_by_steps() -> None:
    record = _short(0, 0.9, 1e-4)  # short: 10 + 100 steps, full: 40 + 400 steps
    assert full_cost_estimate(record) == pytest.approx(20.0 * 440 / 110)


def test_full_cost_estimate_scales_only_the_steps_share() -> None:
    """20 s over 2 folds, 12 of them in steps: per fold 4 s fixed and 6 s of steps, which
    become 24 s at 4x the steps; a bag of 5 folds 5 x 28 = 140 s (200 s scaled whole)."""
    record = _short(0, 0.9, 1e-4, step_seconds=12.0, folds=(0, 1))
    assert full_cost_estimate(record, full_runs=5) == pytest.approx(140.0)
    assert full_cost_estimate(_short(0, 0.9, 1e-4, folds=(0, 1)), full_runs=5) == pytest.approx(200.0)


def test_equal_scores_rank_by_validation_loss_before_cost() -> None:
    """On 10 validation samples accuracies tie often; the loss still separates them."""
    records = [_short(0, 0.7, 1e-4, cost=1.0, val_loss=0.9), _short(1, 0.7, 2e-4, cost=2.0, val_loss=0.3),
               _short(2, 0.7, 3e-4, cost=0.5), _short(3, 0.6, 4e-4, val_loss=0.1)]
    assert [p.source.number for p in select_promotions(records, top_k=4)] == [1, 0, 2, 3]


def test_the_engine_default_is_promoted_first_and_wins_exact_ties() -> None:
    """Its full run is the incumbent a challenger must beat; an exact tie is no evidence
    against it, a higher score ranks above it."""
    default = _short(0, 0.8, 1e-4, cost=2.0, val_loss=0.9, default=True)
    tied = _short(1, 0.8, 2e-4, cost=1.0, val_loss=0.2)
    better = _short(2, 0.9, 3e-4, val_loss=0.5)
    assert [p.source.number for p in select_promotions([default, tied], top_k=2)] == [0, 1]
    assert [p.source.number for p in select_promotions([default, tied, better], top_k=3)] == [0, 2, 1]
    assert [p.source.number for p in select_promotions([default, tied, better], top_k=1)] == [0, 2]
    assert [p.source.number for p in select_promotions([tied, default], top_k=1)] == [0]
    assert sorted([default, tied, better], key=TrialRecord.rank_key)[:2] == [better, default]
