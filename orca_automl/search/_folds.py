"""One trial's runs combined into its result: a hold-out trial is one run, a cross-validated
trial one run per fold (and, for a refit full trial, one more on all development data).

The trial's validation score is the mean of its folds' (their spread is kept); its
out-of-fold predictions are the folds' validation predictions put back in the development
data's row order; a full-schedule trial is a bag of its fold models, tested on the average of
their test predictions, whose inference cost is their summed cost. A refit trial serves its
refit model instead: its test score and cost are that model's, the bag's test score is kept
as a measurement, and its validation evidence stays the folds'. A run that failed or was
pruned decides the trial's state.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orca_automl.evaluation import Evaluation
from orca_automl.search._records import TrialResult
from orca_automl.search._runner import REFIT, TrialOutcome
from orca_automl.search._storage import StoredPredictions


@dataclass(frozen=True)
class CombinedRuns:
    """A trial's result, its predictions to store (None unless every run brought them) and
    its runs' model archives."""

    result: TrialResult
    predictions: StoredPredictions | None
    archives: tuple[bytes, ...]


def combine_runs(outcomes: Sequence[TrialOutcome], task: Any) -> CombinedRuns:
    """The trial's result from its runs (any order; a run carries its slot, see
    `TrialRequest.slot`)."""
    refit = next((o for o in outcomes if o.fold == REFIT), None)
    runs = sorted((o for o in outcomes if o.fold != REFIT),
                  key=lambda o: -1 if o.fold is None else o.fold)
    combined = _combine_folds(runs, task)
    if refit is None:
        return combined
    result = combined.result
    test = refit.result.test  # scored from its predictions, as a bag's is
    if refit.test_predictions is not None:
        test = task.score(task.test.y, refit.test_predictions)
    return CombinedRuns(
        dataclasses.replace(
            result,
            device_seconds=result.device_seconds + refit.result.device_seconds,
            wall_seconds=result.wall_seconds + refit.result.wall_seconds,
            step_seconds=result.step_seconds + refit.result.step_seconds,
            error=result.error if result.error is not None else refit.result.error,
            traceback=result.traceback if result.error is not None else refit.result.traceback,
            notes=tuple(dict.fromkeys((*result.notes, *refit.result.notes))),
            cost=refit.result.cost, test=test, bag_test=result.test),
        None if combined.predictions is None else dataclasses.replace(
            combined.predictions, test=refit.test_predictions),
        () if refit.model_archive is None else (refit.model_archive,))


def _combine_folds(runs: Sequence[TrialOutcome], task: Any) -> CombinedRuns:
    """The hold-out run, or the fold runs in fold order, as one result."""
    archives = tuple(o.model_archive for o in runs if o.model_archive is not None)
    if len(runs) == 1 and runs[0].fold is None:  # the hold-out run is the trial
        run = runs[0]
        stored = None if run.predictions is None else StoredPredictions(
            run.predictions, None, run.test_predictions)
        return CombinedRuns(run.result, stored, archives)
    results = [o.result for o in runs]
    vals = [r.val for r in results if r.val is not None]
    losses = [r.final_align_loss for r in results]
    complete = len(vals) == len(results)
    combined = dataclasses.replace(
        results[0],
        device_seconds=sum(r.device_seconds for r in results),
        wall_seconds=sum(r.wall_seconds for r in results),
        step_seconds=sum(r.step_seconds for r in results),
        notes=tuple(dict.fromkeys(n for r in results for n in r.notes)),
        error=next((r.error for r in results if r.error is not None), None),
        traceback=next((r.traceback for r in results if r.traceback is not None), None),
        pruned=next((r.pruned for r in results if r.pruned is not None), None),
        val=mean_evaluation(vals) if complete else None,
        # a bag runs every fold model to predict: its inference cost is theirs summed
        cost=math.fsum(r.cost or 0.0 for r in results) if archives else results[0].cost,
        fold_vals=tuple(vals) if complete else (),
        final_align_loss=None if None in losses else statistics.fmean(
            loss for loss in losses if loss is not None),
        val_curve=_mean_curve([r.val_curve for r in results]),
    )
    test = _bag_test_predictions(runs)
    if test is not None:
        combined = dataclasses.replace(combined, test=task.score(task.test.y, test))
    predicted = [o.predictions for o in runs if o.predictions is not None]
    rows = [o.indices for o in runs if o.indices is not None]
    stored = None
    if len(predicted) == len(rows) == len(runs):
        stored = StoredPredictions(np.concatenate(predicted), np.concatenate(rows), test)
    return CombinedRuns(combined, stored, archives)


def mean_evaluation(vals: Sequence[Evaluation]) -> Evaluation:
    """The mean of several evaluations of one metric (a cross-validated score)."""
    return Evaluation(vals[0].metric, statistics.fmean(v.value for v in vals),
                      statistics.fmean(v.score for v in vals), statistics.fmean(v.loss for v in vals))


def _mean_curve(curves: Sequence[tuple[tuple[int, float], ...]]) -> tuple[tuple[int, float], ...]:
    """Step-wise mean of the folds' validation curves, at the steps every fold reached."""
    common = set.intersection(*(set(s for s, _ in c) for c in curves)) if curves else set()
    by_step = [dict(c) for c in curves]
    return tuple((s, statistics.fmean(c[s] for c in by_step)) for s in sorted(common))


def _bag_test_predictions(runs: Sequence[TrialOutcome]) -> np.ndarray | None:
    """The bag's test predictions: its folds' average (None unless every fold brought them)."""
    tests = [o.test_predictions for o in runs if o.test_predictions is not None]
    if not tests or len(tests) < len(runs):
        return None
    return np.asarray(np.mean(np.stack(tests), axis=0))
