"""Reference baselines in every study: the field's classical method and 1-NN, scored on the
same validation protocol as the trials (the same folds, or the hold-out split), so the winners
table shows at once whether cross-modal fine-tuning pays on the user's data.

Each baseline becomes a trial of stage BASELINE, with no parameters: its validation score
(mean over folds), its out-of-fold predictions in the artifact store like any trial's, its
test score (of its folds' averaged test predictions) and the device time it took, charged to
the budget. It is fitted in the driver, once per study; a resume does not refit it. Its
inference cost is not measured (recorded as 0) and it is never a winner: it cannot be saved
as a model folder that `orca-predict` serves.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.search._folds import mean_evaluation
from orca_automl.search._records import RunLog, TrialPlan, TrialRecord, TrialResult
from orca_automl.search._storage import StoredPredictions, StudyHandle
from orca_automl.search._validation import Validation

NOTE = "a reference baseline: inference cost not measured (0), not a model orca-predict serves"


def score_baselines(
    handle: StudyHandle,
    task: Any,
    validation: Validation,
    names: list[str],
    fit: Callable[[str, Any, int], Any],
    session: int,
) -> list[TrialRecord]:
    """Score each named baseline the study does not hold yet; returns the new records."""
    held = {r.plan.baseline for r in handle.records()
            if r.plan.stage == Stage.BASELINE and r.state == TrialState.COMPLETE}
    added = []
    for name in names:
        if name in held:
            continue
        trial = handle.create(TrialPlan(Stage.BASELINE, session, folds=validation.folds_of(
            Stage.FULL), baseline=name))
        try:
            result, stored = _fit_on_protocol(name, task, validation, fit)
        except Exception as exc:  # a broken baseline is recorded, and the search goes on
            handle.finish(trial, TrialResult(error=f"{type(exc).__name__}: {exc}",
                                             traceback=traceback.format_exc()[-4000:]))
        else:
            artifact = handle.upload_predictions(trial, stored)
            handle.finish(trial, dataclasses.replace(result, predictions_artifact=artifact))
        added.append(next(r for r in handle.records() if r.number == trial.number))
    return added


def _fit_on_protocol(
    name: str, task: Any, validation: Validation, fit: Callable[[str, Any, int], Any]
) -> tuple[TrialResult, StoredPredictions]:
    """The baseline fitted per fold (or once on the hold-out split): its result and its
    predictions (test: its folds' average)."""
    started, seed = time.time(), validation.seed
    parts = validation.folds_of(Stage.FULL) or (None,)
    folds = task.fold_indices(validation.folds, seed) if validation.cross_validated else []
    runs, vals, tests, predictions = [], [], [], []
    for index in parts:
        part = task if index is None else task.fold(index, validation.folds, seed)
        begin = time.perf_counter()
        fitted = fit(name, part, seed)
        runs.append(RunLog(index, started, time.perf_counter() - begin))
        vals.append(part.score(part.val.y, fitted.val))
        predictions.append(np.asarray(fitted.val))
        tests.append(np.asarray(fitted.test))
    seconds = sum(run.device_seconds or 0.0 for run in runs)
    test = np.mean(np.stack(tests), axis=0)
    result = TrialResult(
        device_seconds=seconds, wall_seconds=seconds, val=mean_evaluation(vals),
        fold_vals=tuple(vals) if validation.cross_validated else (), cost=0.0,
        test=task.score(task.test.y, test), notes=(NOTE,), runs=tuple(runs),
    )
    rows = np.concatenate([folds[i] for i in parts if i is not None]) if folds else None
    return result, StoredPredictions(np.concatenate(predictions), rows, test)
