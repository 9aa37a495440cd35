"""Which short-schedule trials are retrained with the FULL schedule, and what that may cost.

The engine's default configuration is promoted first whenever its short trial completed: its
full run is the incumbent that a challenger must beat beyond noise to become the winner (see
`_winner`). Then promotion ranks COMPLETE short trials by validation score (higher first; ties
go to the engine's default configuration, then the lower validation loss, the lower inference
cost and the earlier trial: `TrialRecord.rank_key`) and takes the top K. A configuration that
already has a COMPLETE full-schedule trial is never promoted again, across resumes, and two
short trials with the same configuration count once. A promoted trial whose full run failed
or was interrupted stays eligible, so it is retried.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.search._records import TrialRecord


@dataclass(frozen=True)
class Promotion:
    """One short trial to retrain in full, with its expected device time."""

    source: TrialRecord
    estimate_seconds: float


def full_cost_estimate(record: TrialRecord, full_runs: int = 1) -> float:
    """Expected full-schedule device time: the short trial's time per run (one per fold it
    ran), its steps' share scaled by the ratio of steps, times the full schedule's runs (its
    folds).

    Only the align and refine steps grow with the schedule: building the model, loading its
    weights, the alignment's reference and the evaluations (as many at either schedule) do
    not, and scaling them too overestimated a full run, so bags were cut to fewer folds and
    budget went unspent (docs/benchmarks/findings.md). A trial recorded without its steps'
    share (`step_seconds` 0: an older study, a runner that does not report it) is scaled
    whole."""
    full = record.plan.config
    assert full is not None, "only trials that ran have a cost to scale"
    short = full.schedule(Stage.SHORT)
    full_steps = full.align.steps + full.refine.steps
    short_steps = max(1, short.align.steps + short.refine.steps)
    runs = max(1, len(record.plan.folds))
    per_run = record.result.device_seconds / runs
    steps = min(record.result.step_seconds / runs, per_run) or per_run
    return (per_run - steps + steps * full_steps / short_steps) * full_runs


def select_promotions(
    records: Sequence[TrialRecord], top_k: int, full_runs: int = 1
) -> list[Promotion]:
    """The engine default's short trial, then the top-K short trials, not yet trained in
    full; a full trial is `full_runs` runs (its folds under cross-validation, and its refit
    run when it has one)."""
    ranked = sorted(
        (
            r for r in records
            if r.plan.stage == Stage.SHORT and r.state == TrialState.COMPLETE
            and r.val_score is not None and math.isfinite(r.val_score)
        ),
        key=TrialRecord.rank_key,
    )
    by_number = {r.number: r for r in records}
    done = {
        _config_key(by_number[r.plan.promoted_from])
        for r in records
        if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE
        and r.plan.promoted_from in by_number
    }
    chosen: list[TrialRecord] = []  # the top-K configurations (one trial each), done or not
    for r in ranked:
        if len(chosen) == top_k:
            break
        if _config_key(r) not in {_config_key(c) for c in chosen}:
            chosen.append(r)
    default = next((r for r in ranked if r.plan.engine_default), None)
    if default is not None:
        chosen = [default, *(c for c in chosen if _config_key(c) != _config_key(default))]
    return [Promotion(r, full_cost_estimate(r, full_runs)) for r in chosen
            if _config_key(r) not in done]


def _config_key(record: TrialRecord) -> str:
    config = record.plan.config
    return json.dumps(config.to_dict() if config is not None else None, sort_keys=True)
