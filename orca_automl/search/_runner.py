"""What runs inside one trial: the runner interface and its real adapter to `run_cycle`.

The search logic only sees `TrialRunner.run(request, task, monitor) -> TrialOutcome`. The real
`CycleRunner` turns the trial's config into one `run_cycle` call and hooks the trial's pruning
rules into the cycle's callback; tests plug in a fake runner with a fake clock instead.
`execute_trial` wraps any runner with what every trial needs: timing, the pruning decision, and
errors caught into the result, so a broken trial becomes a FAIL row rather than a crash.
"""

from __future__ import annotations

import dataclasses
import io
import math
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from orca_automl.config import OrcaConfig, Stage
from orca_automl.search._pruning import AlignPruneRule, RefinePruneRule, TrialMonitor
from orca_automl.search._records import TrialResult


@dataclass(frozen=True)
class FoldSpec:
    """Which cross-validation fold a run trains without and validates on."""

    index: int
    count: int
    seed: int


#: The run slot of a refit run: the full schedule on all development data, after the folds.
REFIT = -1


@dataclass(frozen=True)
class TrialRequest:
    """One run of a trial (its hold-out run, one fold, or the refit of a cross-validated full
    trial on all development data): its config, stage, device share and the pruning rules it
    starts with."""

    number: int
    stage: Stage
    config: OrcaConfig
    device_share: float = 1.0
    align_rule: AlignPruneRule | None = None
    refine_rule: RefinePruneRule | None = None
    fold: FoldSpec | None = None
    refit: bool = False

    @property
    def slot(self) -> int | None:
        """Which run of its trial this is: its fold index, REFIT, or None (hold-out)."""
        if self.refit:
            return REFIT
        return self.fold.index if self.fold else None


@dataclass(frozen=True)
class TrialOutcome:
    """One run's result as it comes back to the driver.

    fold is the run's slot (`TrialRequest.slot`). predictions are the run's validation
    predictions (the one form of `tasks.to_predictions`), for the development data's rows
    `indices` when it is a fold run (a refit run has none). A full-schedule run also
    brings its test predictions and its saved model folder, as a tar, so that it travels back
    from any node of a cluster.
    """

    number: int
    result: TrialResult
    model_archive: bytes | None = None
    fold: int | None = None
    predictions: np.ndarray | None = None
    indices: np.ndarray | None = None
    test_predictions: np.ndarray | None = None


class TrialRunner(Protocol):
    """Runs one trial and returns what it measured (timing and pruning are added by
    `execute_trial`). Call `monitor.align_finished(curve)` after the align stage and
    `monitor.evaluated(step, score)` at each refine evaluation; stop when either is False."""

    def run(self, request: TrialRequest, task: Any, monitor: TrialMonitor) -> TrialOutcome: ...


def execute_trial(
    runner: TrialRunner, request: TrialRequest, task: Any, clock: Callable[[], float] = time.monotonic
) -> TrialOutcome:
    """Run one trial and turn whatever happens into an outcome (never raises for the trial's
    own errors). Device time is the trial's wall time times its device share."""
    monitor = TrialMonitor(request.align_rule, request.refine_rule)
    start = clock()
    try:
        outcome = runner.run(request, task, monitor)
    except Exception as exc:
        wall = clock() - start
        return TrialOutcome(request.number, TrialResult(
            device_seconds=wall * request.device_share, wall_seconds=wall,
            val_curve=tuple(monitor.val_curve), error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc()[-4000:],
        ), fold=request.slot)
    wall = clock() - start
    result = outcome.result
    error = None
    score = result.val.score if result.val is not None else math.nan
    cost = result.cost if result.cost is not None else math.nan
    if monitor.reason is None and not (math.isfinite(score) and math.isfinite(cost)):
        error = f"non-finite result: val_score={score}, cost={cost}"
    return dataclasses.replace(outcome, result=dataclasses.replace(
        result, device_seconds=wall * request.device_share, wall_seconds=wall,
        step_seconds=min(result.step_seconds, wall) * request.device_share,
        val_curve=tuple(monitor.val_curve), pruned=monitor.reason, error=error,
    ))


class CycleRunner:
    """The real runner: one `run_cycle` per trial, with the short or the full schedule.

    A full-schedule run that finishes is a winner: it is evaluated on the test split (the only
    place the search touches test data) and saved as a model folder `orca-predict` loads.
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def run(self, request: TrialRequest, task: Any, monitor: TrialMonitor) -> TrialOutcome:
        from orca_automl.cycle import (
            CycleCallback,
            evaluate_with_predictions,
            run_cycle,
            save_model,
        )

        class Hooks(CycleCallback):
            def on_align_end(self, curve: list[float]) -> bool:
                return monitor.align_finished(curve)

            def on_eval(self, step: int, val_score: float, val_loss: float) -> bool:
                return monitor.evaluated(step, val_score)

        fold, indices = request.fold, None
        config = request.config
        if request.refit:  # no held-out rows to choose a checkpoint on: the final one
            task = task.refit()
            config = config.with_overrides({"refine.select": "final"})
        elif fold is not None:
            indices = task.fold_indices(fold.count, fold.seed)[fold.index]
            task = task.fold(fold.index, fold.count, fold.seed)
        result = run_cycle(task, config, schedule=request.stage, callback=Hooks(), device=self.device)
        archive, test, test_predictions = None, None, None
        if request.stage == Stage.FULL and result.stopped is None:
            test, test_predictions = evaluate_with_predictions(result.model, task, "test")
            with tempfile.TemporaryDirectory(prefix="orca-winner-") as tmp:
                folder = save_model(result.model, task, config, Path(tmp) / "model",
                                    scores=result.scores(test), notes=result.notes)
                archive = pack_folder(folder)
        return TrialOutcome(request.number, TrialResult(
            val=None if result.stopped == "align" else result.val,
            cost=result.cost,
            align_curve=tuple(float(v) for v in result.align_curve),
            final_align_loss=result.final_align_loss,
            notes=tuple(result.notes),
            test=test,
            step_seconds=result.step_seconds,
        ), archive, fold=request.slot,
            predictions=None if request.refit else result.val_predictions,  # in-sample: unused
            indices=indices, test_predictions=test_predictions)


def pack_folder(folder: Path) -> bytes:
    """A folder as an in-memory tar (its contents at the archive's root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def unpack_folder(archive: bytes, folder: Path) -> Path:
    """Write a `pack_folder` archive into `folder` (created; must not exist yet)."""
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(folder, filter="data")
    return folder
