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

import dataclasses
import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError
from orca_automl.search._budget import BudgetLedger
from orca_automl.search._callbacks import SearchCallback, Snapshot
from orca_automl.search._executor import Executor
from orca_automl.search._promotion import Promotion, select_promotions
from orca_automl.search._pruning import AlignLossPruner, RefineMedianPruner
from orca_automl.search._records import StudyKey, TrialPlan, TrialRecord, TrialResult, json_safe
from orca_automl.search._resume import beat, pending_retries
from orca_automl.search._runner import TrialOutcome, TrialRequest, unpack_folder
from orca_automl.search._sessions import total_spent
from orca_automl.search._space import SearchSpace
from orca_automl.search._storage import StudyHandle

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
        ...                   SearchCallback())                             # doctest: +SKIP
        >>> records = loop.run()                                            # doctest: +SKIP
    """

    def __init__(
        self,
        handle: StudyHandle,
        space: SearchSpace,
        executor: Executor,
        ledger: BudgetLedger,
        settings: LoopSettings,
        callback: SearchCallback,
        align_pruner: AlignLossPruner | None = None,
        refine_pruner: RefineMedianPruner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle = handle
        self.space = space
        self.executor = executor
        self.ledger = ledger
        self.settings = settings
        self.callback = callback
        self.align_pruner = align_pruner or AlignLossPruner()
        self.refine_pruner = refine_pruner or RefineMedianPruner()
        self.clock = clock
        self._running: dict[int, _Running] = {}
        self._started = time.time()
        # read once: the study records its default-first trial before any loop runs
        self._default_trial = handle.attrs.get(StudyKey.ENGINE_DEFAULT_TRIAL)
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
            self.callback.on_promotion_skipped(p, self.ledger.remaining)

    # ----------------------------------------------------------------- launching
    def _launch_short(self) -> None:
        plan = TrialPlan(Stage.SHORT, self.settings.session, self.settings.device_share)
        if self._retries:
            source = self._retries.pop(0)
            trial = self.handle.ask_like(source, dataclasses.replace(
                plan, engine_default=source.plan.engine_default, retry_of=source.number))
        else:
            trial = self.handle.study.ask()
            self.handle.write(trial, dataclasses.replace(
                plan, engine_default=trial.number == self._default_trial))
        try:
            config = self.space.config(self.space.sample(trial), self.settings.seed)
        except OrcaInputError as exc:  # a combination of values the config refuses
            self.handle.finish(trial, TrialResult(error=str(exc)))
            self._count(failed=True, error=str(exc))
            self._refresh()
            return
        self.handle.write(trial, TrialPlan(config=config), "config")
        request = TrialRequest(
            number=trial.number,
            stage=Stage.SHORT,
            config=config,
            device_share=self.settings.device_share,
            align_rule=self.align_pruner.rule(config, self.evidence),
            refine_rule=self.refine_pruner.rule(config.schedule(Stage.SHORT).refine.steps,
                                                self.records),
        )
        self.executor.submit(request)
        self._running[trial.number] = _Running(trial, self._typical_short())

    def _launch_full(self, promotion: Promotion) -> None:
        source = promotion.source
        assert source.plan.config is not None
        trial = self.handle.ask_like(source, TrialPlan(
            Stage.FULL, self.settings.session, self.settings.device_share, source.plan.config,
            engine_default=source.plan.engine_default, promoted_from=source.number,
        ))
        request = TrialRequest(trial.number, Stage.FULL, source.plan.config,
                               self.settings.device_share)
        self.executor.submit(request)
        self._running[trial.number] = _Running(trial, promotion.estimate_seconds)

    # ----------------------------------------------------------------- finishing
    def _collect(self) -> None:
        for outcome in self.executor.wait(self.settings.poll_seconds):
            self._finish(outcome)
        self.callback.on_progress(self._snapshot())

    def _finish(self, outcome: TrialOutcome) -> None:
        trial = self._running.pop(outcome.number).trial
        result = outcome.result
        if result.state == TrialState.COMPLETE and outcome.model_archive is not None:
            folder = self.settings.winners_dir / f"trial-{outcome.number}"
            if folder.exists():
                shutil.rmtree(folder)
            result = dataclasses.replace(
                result, model_dir=str(unpack_folder(outcome.model_archive, folder)))
        self.handle.finish(trial, result)
        self.ledger.charge(result.device_seconds)
        self._count(result.state == TrialState.FAIL, result.error)
        self._refresh()
        record = next(r for r in self.records if r.number == outcome.number)
        self.callback.on_progress(self._snapshot())
        self.callback.on_trial_end(record)

    def _refresh(self) -> None:
        """Re-read the study and rewrite its summary attributes."""
        self.records = self.handle.records()
        self.evidence = self.align_pruner.evidence(self.records)
        self.handle.set_attr(StudyKey.DEVICE_SECONDS_SPENT, total_spent(self.records))
        self.handle.set_attr(StudyKey.PRUNING_EVIDENCE, {
            "alignment_rule": ALIGN_RULE_TEXT if self.align_pruner.enabled else "off",
            "min_trials": self.align_pruner.min_trials,
            "alpha": self.align_pruner.alpha,
            "max_fraction": self.align_pruner.max_fraction,
            "groups": {g: json_safe(e.to_attr()) for g, e in self.evidence.items()},
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
        seconds = [r.result.device_seconds for r in self.records
                   if r.plan.stage == Stage.SHORT
                   and r.state in (TrialState.COMPLETE, TrialState.PRUNED)]
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
            beat(self.handle, self._started)
            self._last_beat = self.clock()
