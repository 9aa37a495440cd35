"""The driver: ask Optuna for configurations, run them on an executor, tell Optuna the truth.

The budget is spent in two phases. First short-schedule trials run, `workers` at a time, while
spent + in-flight device time stays under the budget minus a reserve, and a trial of the
typical length so far (the median short trial) still fits under it; each starts with pruning
rules calibrated on the trials finished so far. The reserve is the promotion share, or more
(up to `max_reserve` of the budget) when the best configuration so far is expected to need
more for its full run (its short run's device time, scaled by steps). Then the top-K
configurations are retrained with the full schedule: the best always starts while any budget
is left, the others only when their expected cost fits. If nothing needs promoting, the
reserve goes to more short trials.

Every trial is created RUNNING by this process and finished by it with `tell`: COMPLETE with
(validation score, cost), PRUNED with its reason, or FAIL with its error. Results are written
to the trial before it is told, and every decision is recomputed from the study's records, so
a run killed at any point resumes from what the database says.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from orca_automl.errors import OrcaInputError
from orca_automl.search._budget import BudgetLedger, format_seconds
from orca_automl.search._executor import Executor
from orca_automl.search._progress import Progress, Snapshot
from orca_automl.search._promotion import Promotion, select_promotions
from orca_automl.search._pruning import AlignLossPruner, RefineMedianPruner
from orca_automl.search._records import (
    ALIGN_CURVE,
    CONFIG,
    DEVICE_SECONDS,
    DEVICE_SHARE,
    ENGINE_DEFAULT,
    ENGINE_DEFAULT_TRIAL,
    ERROR,
    FINAL_ALIGN_LOSS,
    METRIC_NAME,
    MODEL_DIR,
    NOTES,
    PROMOTED_FROM,
    PRUNED_REASON,
    RETRY_OF,
    SESSION,
    STAGE,
    TEST,
    TEST_SCORE,
    TRACEBACK,
    VAL_CURVE,
    VAL_LOSS,
    VAL_METRIC,
    WALL_SECONDS,
    TrialRecord,
)
from orca_automl.search._runner import TrialOutcome, TrialRequest, unpack_folder
from orca_automl.search._space import SearchSpace
from orca_automl.search._storage import StudyHandle, pending_retries, total_spent

ALIGN_RULE_TEXT = (
    "per (backbone, reference data, distance) group: Spearman rho between final alignment "
    "loss and validation score of finished short trials; pruning only when rho < 0 with "
    "one-sided p <= alpha, of the worst-aligned max_fraction * |rho| of trials, never at or "
    "below the loss of the group's best trials"
)


class SearchFailed(RuntimeError):
    """Trials keep failing: something is broken, and spending more budget won't help."""


@dataclass(frozen=True)
class LoopSettings:
    """How the driver spends one budget session."""

    workers: int
    top_k: int
    promotion_share: float
    device_share: float
    seed: int
    session: int
    winners_dir: Path
    poll_seconds: float = 1.0
    heartbeat_seconds: float = 5.0
    failures_before_giving_up: int = 3
    failure_streak_limit: int = 10
    max_reserve: float = 0.5


@dataclass
class _Running:
    trial: optuna.Trial
    estimate: float


class SearchLoop:
    """Runs one budget session of a study to the end.

    Example (with a fake runner, as the tests do):
        >>> loop = SearchLoop(handle, space, executor, BudgetLedger(600), settings,
        ...                   Progress())                                   # doctest: +SKIP
        >>> records = loop.run()                                            # doctest: +SKIP
    """

    def __init__(
        self,
        handle: StudyHandle,
        space: SearchSpace,
        executor: Executor,
        ledger: BudgetLedger,
        settings: LoopSettings,
        progress: Progress,
        align_pruner: AlignLossPruner | None = None,
        refine_pruner: RefineMedianPruner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle = handle
        self.space = space
        self.executor = executor
        self.ledger = ledger
        self.settings = settings
        self.progress = progress
        self.align_pruner = align_pruner or AlignLossPruner()
        self.refine_pruner = refine_pruner or RefineMedianPruner()
        self.clock = clock
        self._running: dict[int, _Running] = {}
        self._started = time.time()
        # read once: the study records its default-first trial before any loop runs
        self._default_trial = handle.attrs.get(ENGINE_DEFAULT_TRIAL)
        self._last_beat = -math.inf
        self._failures = 0
        self._successes = 0
        self._streak = 0
        self._first_error: str | None = None
        self._phase = "search"
        self._refresh()
        self._retries = pending_retries(self.records)

    # ------------------------------------------------------------------ phases
    def run(self) -> list[TrialRecord]:
        """Search, then promote; returns the study's records at the end."""
        self._search(self._search_limit)
        picks = select_promotions(self.records, self.settings.top_k)
        if not picks:
            self._search(lambda: self.ledger.total)
            picks = select_promotions(self.records, self.settings.top_k)
        self._promote(picks)
        self.progress.close()
        return self.records

    def _search_limit(self) -> float:
        """What short trials may use: the budget minus the promotion reserve."""
        total = self.ledger.total
        best = select_promotions(self.records, 1)
        need = best[0].estimate_seconds if best else 0.0
        reserve = max(self.settings.promotion_share * total, min(need, self.settings.max_reserve * total))
        return total - reserve

    def _search(self, limit: Callable[[], float]) -> None:
        self._phase = "search"
        while True:
            self._beat()
            while (
                len(self._running) < self.settings.workers
                and not self._failing()
                and self.ledger.can_start(limit(), self._in_flight_seconds())
                and self.ledger.fits(self._typical_short(), self._in_flight_expected(), limit())
            ):
                self._launch_short()
            if not self._running:
                break
            self._collect()
        if self._failing():
            which = "first" if self._successes == 0 else "last"
            raise SearchFailed(
                f"the {which} {self._streak} trials of this run failed, the first with: "
                f"{self._first_error} (see the trials' 'error' and 'traceback' attributes)"
            )

    def _promote(self, picks: list[Promotion]) -> None:
        self._phase = "promotion"
        pending = list(picks)
        launched = False
        while True:
            self._beat()
            while pending and len(self._running) < self.settings.workers:
                if launched:
                    ok = self.ledger.fits(pending[0].estimate_seconds, self._in_flight_expected())
                else:  # the best one always gets its chance while any budget is left
                    ok = self.ledger.can_start(self.ledger.total, self._in_flight_seconds())
                if not ok:
                    break
                self._launch_full(pending.pop(0))
                launched = True
            if not self._running:
                break
            self._collect()
        for p in pending:
            self.progress.note(
                f"not promoted: trial {p.source.number} (val {p.source.val_score:.4f}) needs about "
                f"{format_seconds(p.estimate_seconds)} of full training, "
                f"{format_seconds(self.ledger.remaining)} of the budget is left"
            )

    # ----------------------------------------------------------------- launching
    def _launch_short(self) -> None:
        attrs: dict[str, Any] = {STAGE: "short", SESSION: self.settings.session,
                                 DEVICE_SHARE: self.settings.device_share}
        if self._retries:
            source = self._retries.pop(0)
            if source.engine_default:
                attrs[ENGINE_DEFAULT] = True
            trial = self.handle.ask_like(source, {**attrs, RETRY_OF: source.number})
        else:
            trial = self.handle.ask()
            if trial.number == self._default_trial:
                attrs[ENGINE_DEFAULT] = True
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
        try:
            config = self.space.config(self.space.sample(trial), self.settings.seed)
        except OrcaInputError as exc:  # a combination of values the config refuses
            trial.set_user_attr(ERROR, str(exc))
            self.handle.study.tell(trial, state=TrialState.FAIL)
            self._count(failed=True, error=str(exc))
            self._refresh()
            return
        config_dict = config.to_dict()
        trial.set_user_attr(CONFIG, config_dict)
        request = TrialRequest(
            number=trial.number,
            stage="short",
            config=config_dict,
            device_share=self.settings.device_share,
            align_rule=self.align_pruner.rule(config_dict, self.evidence),
            refine_rule=self.refine_pruner.rule(config.schedule("short").refine.steps, self.records),
        )
        self.executor.submit(request)
        self._running[trial.number] = _Running(trial, self._typical_short())

    def _launch_full(self, promotion: Promotion) -> None:
        source = promotion.source
        trial = self.handle.ask_like(source, {
            STAGE: "full", SESSION: self.settings.session, DEVICE_SHARE: self.settings.device_share,
            PROMOTED_FROM: source.number, CONFIG: source.config,
            **({ENGINE_DEFAULT: True} if source.engine_default else {}),
        })
        request = TrialRequest(trial.number, "full", source.config, self.settings.device_share)
        self.executor.submit(request)
        self._running[trial.number] = _Running(trial, promotion.estimate_seconds)

    # ----------------------------------------------------------------- finishing
    def _collect(self) -> None:
        for outcome in self.executor.wait(self.settings.poll_seconds):
            self._finish(outcome)
        self.progress.update(self._snapshot())

    def _finish(self, outcome: TrialOutcome) -> None:
        trial = self._running.pop(outcome.number).trial
        attrs = _outcome_attrs(outcome)
        report = outcome.report
        if outcome.state == "complete" and report is not None and report.model_archive is not None:
            folder = self.settings.winners_dir / f"trial-{outcome.number}"
            if folder.exists():
                shutil.rmtree(folder)
            attrs[MODEL_DIR] = str(unpack_folder(report.model_archive, folder))
        if report is not None and report.test is not None:
            attrs[TEST] = _json_safe(report.test)
            attrs[TEST_SCORE] = _json_safe(report.test.get("score"))
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if outcome.state == "complete" and report is not None:
            self.handle.study.tell(trial, [report.val_score, report.cost])
        elif outcome.state == "pruned":
            self.handle.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.handle.study.tell(trial, state=TrialState.FAIL)
        self.ledger.charge(outcome.device_seconds)
        self._count(outcome.state == "fail", outcome.error)
        self._refresh()
        record = next(r for r in self.records if r.number == outcome.number)
        self.progress.update(self._snapshot())
        self.progress.trial_finished(record)

    def _refresh(self) -> None:
        """Re-read the study and rewrite its summary attributes."""
        self.records = self.handle.records()
        self.evidence = self.align_pruner.evidence(self.records)
        self.handle.set_attr("device_seconds_spent", total_spent(self.records))
        self.handle.set_attr("pruning_evidence", {
            "alignment_rule": ALIGN_RULE_TEXT if self.align_pruner.enabled else "off",
            "min_trials": self.align_pruner.min_trials,
            "alpha": self.align_pruner.alpha,
            "max_fraction": self.align_pruner.max_fraction,
            "groups": {g: _json_safe(e.to_attr()) for g, e in self.evidence.items()},
            "refine_rule": (f"median stopping after {self.refine_pruner.min_trials} finished "
                            f"trials, from {self.refine_pruner.start_fraction:.0%} of refine steps")
                           if self.refine_pruner.enabled else "off",
        })

    # ------------------------------------------------------------------ helpers
    def _count(self, failed: bool, error: str | None) -> None:
        if failed:
            self._failures += 1
            self._streak += 1
            if self._streak == 1:
                self._first_error = error
        else:
            self._successes += 1
            self._streak = 0

    def _failing(self) -> bool:
        """Too many failures in a row: the first few, or a long streak later on (failed trials
        teach the sampler nothing, so it may keep proposing a broken region)."""
        if self._successes == 0:
            return self._failures >= self.settings.failures_before_giving_up
        return self._streak >= self.settings.failure_streak_limit

    def _typical_short(self) -> float:
        """Median device time of this study's finished short trials (0 before the first)."""
        seconds = [r.device_seconds for r in self.records
                   if r.stage == "short" and r.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        return statistics.median(seconds) if seconds else 0.0

    def _in_flight_seconds(self) -> float:
        return math.fsum(self.executor.in_flight().values())

    def _in_flight_expected(self) -> float:
        return math.fsum(
            max(used, self._running[n].estimate) for n, used in self.executor.in_flight().items()
        )

    def _snapshot(self) -> Snapshot:
        return Snapshot.of(self.records, self.ledger.committed(self._in_flight_seconds()),
                           self.ledger.total, len(self._running), self._phase)

    def _beat(self) -> None:
        if self.clock() - self._last_beat >= self.settings.heartbeat_seconds:
            self.handle.beat(self._started)
            self._last_beat = self.clock()


def _outcome_attrs(outcome: TrialOutcome) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        DEVICE_SECONDS: outcome.device_seconds,
        WALL_SECONDS: outcome.wall_seconds,
        VAL_CURVE: [[s, v] for s, v in outcome.val_curve],
    }
    report = outcome.report
    if report is not None:
        attrs.update({
            ALIGN_CURVE: report.align_curve,
            FINAL_ALIGN_LOSS: report.final_align_loss,
            VAL_METRIC: report.val_metric,
            METRIC_NAME: report.metric_name,
            VAL_LOSS: report.val_loss,
            NOTES: report.notes,
        })
    if outcome.pruned_reason is not None:
        attrs[PRUNED_REASON] = outcome.pruned_reason
    if outcome.error is not None:
        attrs[ERROR] = outcome.error
    if outcome.traceback is not None:
        attrs[TRACEBACK] = outcome.traceback
    return {k: _json_safe(v) for k, v in attrs.items()}


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None: the dashboard parses attributes as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
