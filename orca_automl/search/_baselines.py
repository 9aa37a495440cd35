"""Reference baselines in every study: the field's classical method and 1-NN, scored on the
same validation protocol as the trials (the same folds, or the hold-out split), so the winners
table shows at once whether cross-modal fine-tuning pays on the user's data.

Each baseline becomes a trial of stage BASELINE, with no parameters: its validation score
(mean over folds), its out-of-fold predictions in the artifact store like any trial's, its
test score (of its folds' averaged test predictions) and the device time it took, charged to
the budget. It is fitted in the driver, once per study; a resume does not refit it. Its
inference cost is not measured (recorded as 0). When baselines compete (the default) it is
also saved as a model folder (a bag of its fold models under cross-validation, see
`orca_automl.baselines.save_baseline`): the best validated one is the winner rule's incumbent
(the engine default replaces it only by beating it beyond noise), any may win by beating the
incumbent beyond noise, and the greedy ensemble may mix them with the fully trained
configurations. Otherwise they are references only.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.search._folds import mean_evaluation
from orca_automl.search._loop import save_trial_folder
from orca_automl.search._records import RunLog, TrialPlan, TrialRecord, TrialResult
from orca_automl.search._storage import StoredPredictions, StudyHandle
from orca_automl.search._validation import Validation

NOTE = "a reference baseline: inference cost not measured (0)"
NOT_SERVED = "a reference only: not saved as a model (baselines do not compete in this search)"


@dataclass(frozen=True)
class BaselineSaving:
    """How competing baselines become model folders: `save(result, part, seed, folder)`
    writes one fitted part (the whole task, or one fold), `bag(parts, folder, scores)` joins
    a baseline's fold folders into one ensemble folder, under `winners_dir`/trial-N."""

    winners_dir: Path
    save: Callable[[Any, Any, int, Path], Path]
    bag: Callable[[Sequence[tuple[Path, float]], Path, dict[str, Any]], Path]


def score_baselines(
    handle: StudyHandle,
    task: Any,
    validation: Validation,
    names: list[str],
    fit: Callable[[str, Any, int], Any],
    session: int,
    saving: BaselineSaving | None = None,
) -> list[TrialRecord]:
    """Score each named baseline the study does not hold yet, saving it as a model folder
    when `saving` is given; returns the new records."""
    held = {r.plan.baseline for r in handle.records()
            if r.plan.stage == Stage.BASELINE and r.state == TrialState.COMPLETE}
    added = []
    for name in names:
        if name in held:
            continue
        trial = handle.create(TrialPlan(Stage.BASELINE, session, folds=validation.folds_of(
            Stage.FULL), baseline=name))
        try:
            result, stored, parts = _fit_on_protocol(name, task, validation, fit)
            if saving is not None:
                folder = _save(saving, trial.number, parts, validation.seed, result)
                result = dataclasses.replace(result, model_dir=str(folder))
            else:
                result = dataclasses.replace(result, notes=(*result.notes, NOT_SERVED))
        except Exception as exc:  # a broken baseline is recorded, and the search goes on
            handle.finish(trial, TrialResult(error=f"{type(exc).__name__}: {exc}",
                                             traceback=traceback.format_exc()[-4000:]))
        else:
            artifact = handle.upload_predictions(trial, stored)
            handle.finish(trial, dataclasses.replace(result, predictions_artifact=artifact))
        added.append(next(r for r in handle.records() if r.number == trial.number))
    return added


def _save(saving: BaselineSaving, number: int, parts: list[tuple[Any, Any]], seed: int,
          result: TrialResult) -> Path:
    """The baseline's model folder: its one fitted part, or the bag of its fold parts."""
    writers = [functools.partial(saving.save, fitted, part, seed) for part, fitted in parts]
    return save_trial_folder(saving.winners_dir, number, writers, saving.bag, result)


def _fit_on_protocol(
    name: str, task: Any, validation: Validation, fit: Callable[[str, Any, int], Any]
) -> tuple[TrialResult, StoredPredictions, list[tuple[Any, Any]]]:
    """The baseline fitted per fold (or once on the hold-out split): its result, its
    predictions (test: its folds' average), and each (task part, fitted baseline)."""
    started, seed = time.time(), validation.seed
    indices = validation.folds_of(Stage.FULL) or (None,)
    folds = task.fold_indices(validation.folds, seed) if validation.cross_validated else []
    runs, vals, tests, predictions, parts = [], [], [], [], []
    for index in indices:
        part = task if index is None else task.fold(index, validation.folds, seed)
        begin = time.perf_counter()
        fitted = fit(name, part, seed)
        runs.append(RunLog(index, started, time.perf_counter() - begin))
        vals.append(part.score(part.val.y, fitted.val))
        predictions.append(np.asarray(fitted.val))
        tests.append(np.asarray(fitted.test))
        parts.append((part, fitted))
    seconds = sum(run.device_seconds or 0.0 for run in runs)
    test = np.mean(np.stack(tests), axis=0)
    result = TrialResult(
        device_seconds=seconds, wall_seconds=seconds, val=mean_evaluation(vals),
        fold_vals=tuple(vals) if validation.cross_validated else (), cost=0.0,
        test=task.score(task.test.y, test), notes=(NOTE,), runs=tuple(runs),
    )
    rows = np.concatenate([folds[i] for i in indices if i is not None]) if folds else None
    return result, StoredPredictions(np.concatenate(predictions), rows, test), parts
