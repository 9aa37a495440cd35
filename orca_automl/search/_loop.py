"""The driver: ask Optuna for configurations, run them on an executor, tell Optuna the truth.

A trial is one run (hold-out validation) or one run per cross-validation fold; `workers` runs
go at a time, the runs of trials already started first, and a trial ends when its last run
does (or when one is pruned or fails: its other runs are not started).

The budget is spent in two phases. First short-schedule trials run, `workers` at a time, while
spent + in-flight device time stays under the budget minus a reserve, and a trial of the
typical length so far (the median short trial) still fits under it; each starts with pruning
rules calibrated on the trials finished so far. The reserve is the promotion share, or more
(up to `max_reserve` of the budget) when the best configuration so far is expected to need
more for its full run (its short run's device time, scaled by steps). Then the top-K
configurations are retrained with the full schedule: the best always starts while any budget
is left, the others only when their expected cost fits; under cross-validation a challenger
whose whole bag does not fit trains a smaller one (MIN_BAG fold models or more), so what is
left buys a cheaper challenger instead of going unused. If nothing needs promoting, the
reserve goes to more short trials.

Every trial is created RUNNING by this process and finished by it with `tell`: COMPLETE with
(validation score, cost), PRUNED with its reason, or FAIL with its error. Results are written
to the trial before it is told, and every decision is recomputed from the study's records, so
a run killed at any point resumes from what the database says.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError
from orca_automl.search._budget import BudgetLedger
from orca_automl.search._callbacks import SearchCallback, Snapshot
from orca_automl.search._driver_lock import DriverLock, NoLock
from orca_automl.search._ensemble import cross_fitted, greedy_weights
from orca_automl.search._executor import Executor
from orca_automl.search._folds import CombinedRuns, combine_runs
from orca_automl.search._promotion import Promotion, select_promotions
from orca_automl.search._pruning import AlignLossPruner, FoldPruner, RefineMedianPruner
from orca_automl.search._records import (
    PruneReason,
    RunLog,
    StudyKey,
    TrialPlan,
    TrialRecord,
    TrialResult,
    json_safe,
)
from orca_automl.search._resume import beat, pending_retries
from orca_automl.search._runner import FoldSpec, TrialOutcome, TrialRequest, unpack_folder
from orca_automl.search._sessions import total_spent
from orca_automl.search._space import SearchSpace
from orca_automl.search._storage import (
    StoredPredictions,
    StudyHandle,
    on_rows,
    shared_validation_rows,
)
from orca_automl.search._validation import Validation
from orca_automl.search._winner import WinnerDecision, decide_winner, shared_rows

ALIGN_RULE_TEXT = (
    "per (backbone, reference data, distance) group: Spearman rho between final alignment "
    "loss and validation score of finished short trials; pruning only when rho < 0 with "
    "one-sided p <= alpha, of the worst-aligned max_fraction * |rho| of trials, never at or "
    "below the loss of the group's best trials"
)


#: The fewest fold models a bag keeps when the budget cannot pay for all of them.
MIN_BAG = 2


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
    validation: Validation = Validation()
    ensemble: bool = True
    baselines_compete: bool = True  # saved baselines may win and join ensembles
    refit: bool = False  # cross-validated full trials also refit on all development data
    poll_seconds: float = 1.0
    heartbeat_seconds: float = 5.0
    failures_before_giving_up: int = 3
    failure_streak_limit: int = 10
    max_reserve: float = 0.5


@dataclass
class _Running:
    """A trial in flight: its runs not yet started, how many run now, and those finished."""

    trial: optuna.Trial
    estimate: float
    pending: list[TrialRequest]
    in_flight: int = 0
    outcomes: list[TrialOutcome] = field(default_factory=list)
    runs: dict[int | None, RunLog] = field(default_factory=dict)
    pruned: PruneReason | None = None  # by the driver, between folds

    @property
    def done_seconds(self) -> float:
        return math.fsum(o.result.device_seconds for o in self.outcomes)


#: Temporary folders a save writes in the winners folder before renaming them into place.
PARTIAL_PREFIX = ".partial-"


def remove_partial(winners_dir: Path) -> None:
    """Remove what saves of a killed driver left half-written: every hidden folder in the
    winners folder (this loop's `PARTIAL_PREFIX` ones, and `cycle.atomic_folder`'s of ensembles
    and bags). Call while holding the study's driver lock: no other save can be under way."""
    for leftover in winners_dir.glob(".*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def without_baselines(records: Sequence[TrialRecord]) -> Callable[[TrialRecord], bool]:
    """Whether a record of `records` is the search's own: neither a baseline nor an ensemble
    with one among its members."""
    baselines = {r.number for r in records if r.plan.stage == Stage.BASELINE}
    return lambda r: r.plan.stage != Stage.BASELINE and not baselines & set(r.plan.members)


def save_trial_folder(
    winners_dir: Path, number: int, writers: Sequence[Callable[[Path], Path]],
    bag: Callable[[Sequence[tuple[Path, float]], Path, dict[str, Any]], Path],
    result: TrialResult,
) -> Path:
    """Trial `number`'s saved model folder: what its one writer writes, or the bag (equal
    weights, `result`'s scores) of what its writers write, one per fold. Written beside its place and
    renamed into it when whole, so a driver killed while saving leaves no half-written winner
    (only a hidden temporary folder, see `remove_partial`)."""
    folder = winners_dir / f"trial-{number}"
    if folder.exists():
        shutil.rmtree(folder)
    winners_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=PARTIAL_PREFIX, dir=winners_dir) as tmp:
        members = [write(Path(tmp) / f"fold-{i}") for i, write in enumerate(writers)]
        if len(members) == 1:
            return members[0].rename(folder)
        return bag([(m, 1.0) for m in members], folder,
                   {"val": json_safe(result.val), "test": json_safe(result.test)})


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
        task: Any,
        save_ensemble: Callable[[Sequence[tuple[Path, float]], Path, dict[str, Any]], Path],
        align_pruner: AlignLossPruner | None = None,
        refine_pruner: RefineMedianPruner | None = None,
        fold_pruner: FoldPruner | None = None,
        clock: Callable[[], float] = time.monotonic,
        lock: DriverLock | None = None,
    ) -> None:
        self.handle = handle
        self.lock = lock or NoLock()
        self.task = task
        self.save_ensemble = save_ensemble
        self.space = space
        self.executor = executor
        self.ledger = ledger
        self.settings = settings
        self.callback = callback
        self.align_pruner = align_pruner or AlignLossPruner()
        self.refine_pruner = refine_pruner or RefineMedianPruner()
        self.fold_pruner = fold_pruner or FoldPruner()
        self._stored: dict[int, StoredPredictions | None] = {}
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
        self.decision: WinnerDecision | None = None
        self._refresh()
        self._retries = pending_retries(self.records)

    # ------------------------------------------------------------------ phases
    def run(self) -> list[TrialRecord]:
        """Search, then promote; returns the study's records at the end."""
        self._search(self._search_limit)
        picks = self._promotions(self.settings.top_k)
        if not picks:
            self._search(lambda: self.ledger.total)
            picks = self._promotions(self.settings.top_k)
        self._promote(picks)
        competing = self.settings.baselines_compete and any(
            r.servable and r.plan.stage == Stage.BASELINE for r in self.records)
        own_models = without_baselines(self.records)
        if self.settings.ensemble:
            self._ensemble(with_baselines=False)
            if competing:
                self._ensemble(with_baselines=True)
        self.decision = decide_winner(self.records, self.handle.predictions, self.task,
                                      seed=self.settings.seed,
                                      eligible=None if competing else own_models)
        if self.decision is not None:
            self.handle.set_attr(StudyKey.WINNER, json_safe(self.decision.to_attr()))
        if competing:  # a measurement: what the search's own models would have handed the user
            own = decide_winner(self.records, self.handle.predictions, self.task,
                                seed=self.settings.seed, eligible=own_models)
            if own is not None:
                self.handle.set_attr(StudyKey.WINNER_WITHOUT_BASELINES, json_safe(own.to_attr()))
        return self.records

    def _promotions(self, top_k: int) -> list[Promotion]:
        return select_promotions(self.records, top_k, self._full_runs)

    @property
    def _full_runs(self) -> int:
        """Runs of a whole full trial: its folds (or its hold-out run), and its refit run."""
        return max(1, len(self.settings.validation.folds_of(Stage.FULL))) + self._refits

    def _search_limit(self) -> float:
        """What short trials may use: the budget minus the promotion reserve."""
        total = self.ledger.total
        best = self._promotions(2)[:2]  # the incumbent and the best challenger, when both exist
        need = math.fsum(p.estimate_seconds for p in best)
        reserve = max(self.settings.promotion_share * total, min(need, self.settings.max_reserve * total))
        return total - reserve

    def _search(self, limit: Callable[[], float]) -> None:
        self._phase = "search"
        while True:
            self._beat()
            while self._free_slots() > 0:
                # a trial's next fold once its last one is back (so the fold rule can stop it),
                # else a new trial, else more folds of trials already started
                if self._submit_pending(idle_only=True):
                    continue
                if (
                    not self._failing()
                    and self.ledger.can_start(limit(), self._in_flight_seconds())
                    and self.ledger.fits(self._typical_short(), self._in_flight_expected(), limit())
                ):
                    self._launch_short()
                elif not self._submit_pending():
                    break
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
            while self._free_slots() > 0 and not self._submit_pending() and pending:
                if launched:
                    ok = self.ledger.fits(self._smallest_bag(pending[0]), self._in_flight_expected())
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
        plan = TrialPlan(Stage.SHORT, self.settings.session, self.settings.device_share,
                         folds=self.settings.validation.folds_of(Stage.SHORT))
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
        self._start(trial, request, self._typical_short())

    def _launch_full(self, promotion: Promotion) -> None:
        source = promotion.source
        assert source.plan.config is not None
        folds = self._affordable_bag(promotion)
        refit = self._refits
        trial = self.handle.ask_like(source, TrialPlan(
            Stage.FULL, self.settings.session, self.settings.device_share, source.plan.config,
            engine_default=source.plan.engine_default, promoted_from=source.number, folds=folds,
            refit=refit,
        ))
        request = TrialRequest(trial.number, Stage.FULL, source.plan.config,
                               self.settings.device_share)
        runs = max(1, len(folds)) + refit
        self._start(trial, request, promotion.estimate_seconds * runs / self._full_runs, folds,
                    refit=refit)

    @property
    def _refits(self) -> bool:
        """Whether full trials refit on all development data (cross-validation only)."""
        return self.settings.refit and self.settings.validation.cross_validated

    def _smallest_bag(self, promotion: Promotion) -> float:
        """The expected cost of the cheapest full run worth starting: MIN_BAG of its fold
        models under cross-validation, the whole run otherwise."""
        folds = self.settings.validation.folds_of(Stage.FULL)
        if len(folds) <= MIN_BAG:
            return promotion.estimate_seconds
        return promotion.estimate_seconds * (MIN_BAG + self._refits) / self._full_runs

    def _affordable_bag(self, promotion: Promotion) -> tuple[int, ...]:
        """The folds a promoted configuration's bag trains: all K, or as many as the budget
        left can pay for (at least MIN_BAG; after its refit run, when it has one), so a bag
        does not overrun the budget by K runs."""
        folds = self.settings.validation.folds_of(Stage.FULL)
        if not folds:
            return folds
        per_run = promotion.estimate_seconds / self._full_runs
        left = self.ledger.total - self.ledger.spent - self._in_flight_expected()
        affordable = int(left // per_run) - self._refits if per_run > 0 else len(folds)
        return folds[: max(MIN_BAG, min(len(folds), affordable))]

    def _start(self, trial: optuna.Trial, request: TrialRequest, estimate: float,
               folds: tuple[int, ...] | None = None, refit: bool = False) -> None:
        """Queue the trial's runs (one per fold under cross-validation, by default those of
        its stage, then its refit run when asked) and start the first."""
        validation = self.settings.validation
        if folds is None:
            folds = validation.folds_of(request.stage)
        runs = [dataclasses.replace(request, fold=FoldSpec(i, validation.folds, validation.seed))
                for i in folds] or [request]
        if refit:
            runs.append(dataclasses.replace(request, refit=True))
        entry = _Running(trial, estimate, runs)
        self._running[trial.number] = entry
        self._submit(entry)

    def _submit_pending(self, idle_only: bool = False) -> bool:
        """Start the next queued run of the earliest trial that has one (with `idle_only`,
        of one with no run in flight); False if there is none."""
        for entry in self._running.values():
            if entry.pending and (entry.in_flight == 0 or not idle_only):
                self._submit(entry)
                return True
        return False

    def _submit(self, entry: _Running) -> None:
        request = entry.pending.pop(0)
        self.executor.submit(request)
        entry.in_flight += 1
        entry.runs[request.slot] = RunLog(request.slot, time.time())
        self._log_runs(entry)

    def _log_runs(self, entry: _Running) -> None:
        self.handle.write(entry.trial, TrialResult(runs=tuple(entry.runs.values())), "runs")

    def _free_slots(self) -> int:
        return self.settings.workers - sum(e.in_flight for e in self._running.values())

    # ----------------------------------------------------------------- finishing
    def _collect(self) -> None:
        for outcome in self.executor.wait(self.settings.poll_seconds):
            self._run_finished(outcome)
        self.callback.on_progress(self._snapshot())

    def _run_finished(self, outcome: TrialOutcome) -> None:
        entry = self._running[outcome.number]
        entry.in_flight -= 1
        entry.outcomes.append(outcome)
        self.ledger.charge(outcome.result.device_seconds)
        entry.runs[outcome.fold] = dataclasses.replace(
            entry.runs[outcome.fold], device_seconds=outcome.result.device_seconds,
            node=outcome.result.node)
        if outcome.result.state != TrialState.COMPLETE:
            entry.pending.clear()  # a pruned or failed run ends its trial
        elif entry.pending and outcome.fold is not None and self._phase == "search":
            entry.pruned = self._fold_rule(entry)
            if entry.pruned is not None:
                entry.pending.clear()
        if entry.in_flight == 0 and not entry.pending:
            self._finish(outcome.number)
        else:
            self._log_runs(entry)

    def _finish(self, number: int) -> None:
        entry = self._running.pop(number)
        combined = combine_runs(entry.outcomes, self.task)
        result = dataclasses.replace(combined.result, runs=tuple(entry.runs.values()))
        if entry.pruned is not None and result.state == TrialState.COMPLETE:
            result = dataclasses.replace(result, pruned=entry.pruned)
        if combined.predictions is not None and result.state != TrialState.FAIL:
            result = dataclasses.replace(result, predictions_artifact=self.handle.upload_predictions(
                entry.trial, combined.predictions))
        if result.state == TrialState.COMPLETE and combined.archives:
            result = dataclasses.replace(result, model_dir=str(self._save_winner(number, combined)))
        self.handle.finish(entry.trial, result)
        self._count(result.state == TrialState.FAIL, result.error)
        self._refresh()
        record = next(r for r in self.records if r.number == number)
        self.callback.on_progress(self._snapshot())
        self.callback.on_trial_end(record)

    def _save_winner(self, number: int, combined: CombinedRuns) -> Path:
        """The trial's saved model folder: its model, or the bag of its fold models."""
        return save_trial_folder(
            self.settings.winners_dir, number,
            [functools.partial(unpack_folder, archive) for archive in combined.archives],
            self.save_ensemble, combined.result)

    def _ensemble(self, with_baselines: bool) -> None:
        """Greedy ensemble selection over the fully trained configurations' validation
        (out-of-fold) predictions (and, `with_baselines`, the saved baselines'), on the rows
        all of them predicted, recorded and saved as an ENSEMBLE trial when it mixes two or
        more."""
        stages = (Stage.FULL, Stage.BASELINE) if with_baselines else (Stage.FULL,)
        candidates = [r for r in sorted(self.records, key=TrialRecord.rank_key)
                      if r.servable and r.result.predictions_artifact and r.plan.stage in stages]
        stored = [(r, self.handle.predictions(r)) for r in candidates]
        usable = [(r, p) for r, p in stored if p is not None and p.test is not None]
        if len(usable) < 2:
            return
        rows = shared_validation_rows([p for _, p in usable])
        if rows is not None and len(rows) == 0:
            return
        usable = [(r, on_rows(p, rows)) for r, p in usable]
        y = self.task.val.y if rows is None else self.task.development.y[rows]
        weights = greedy_weights([p.val for _, p in usable],
                                 lambda blend: float(self.task.score(y, blend).score))
        chosen = [(r, p, float(w)) for (r, p), w in zip(usable, weights, strict=True) if w > 0]
        members = tuple(r.number for r, _, _ in chosen)
        if len(chosen) < 2 or any(r.plan.stage == Stage.ENSEMBLE and r.plan.members == members
                                  for r in self.records):
            return
        val = cross_fitted([p.val for _, p in usable], y,
                           lambda target, blend: float(self.task.score(target, blend).score),
                           seed=self.settings.seed)
        test = sum(w * p.test for _, p, w in chosen if p.test is not None)
        trial = self.handle.create(TrialPlan(
            Stage.ENSEMBLE, self.settings.session, members=members,
            weights=tuple(w for _, _, w in chosen)))
        result = TrialResult(
            val=self.task.score(y, val), cost=math.fsum(r.cost or 0.0 for r, _, _ in chosen),
            test=self.task.score(self.task.test.y, test),
            notes=("greedy ensemble selection (25 rounds, with replacement) on the members' "
                   "validation predictions; its validation predictions are cross-fitted: each "
                   "fifth of the rows blended with weights chosen on the other four",),
            predictions_artifact=self.handle.upload_predictions(
                trial, StoredPredictions(np.asarray(val), rows, np.asarray(test))),
        )
        self.settings.winners_dir.mkdir(parents=True, exist_ok=True)
        folder = self.save_ensemble(
            [(Path(r.result.model_dir or ""), w) for r, _, w in chosen],
            self.settings.winners_dir / f"trial-{trial.number}",
            {"val": json_safe(result.val), "test": json_safe(result.test)})
        result = dataclasses.replace(result, model_dir=str(folder))
        self.handle.finish(trial, result)
        self._refresh()
        self.callback.on_trial_end(next(r for r in self.records if r.number == trial.number))

    def _fold_rule(self, entry: _Running) -> PruneReason | None:
        """The fold rule's verdict on a short trial's finished folds, against the best COMPLETE
        short trial with stored out-of-fold predictions, on the samples both predicted."""
        if not self.fold_pruner.enabled:
            return None
        best = next((r for r in sorted(self.records, key=TrialRecord.rank_key)
                     if r.plan.stage == Stage.SHORT and r.state == TrialState.COMPLETE
                     and r.result.predictions_artifact), None)
        runs = [o for o in entry.outcomes if o.predictions is not None and o.indices is not None]
        if best is None or not runs:
            return None
        if best.number not in self._stored:
            self._stored[best.number] = self.handle.predictions(best)
        stored = self._stored[best.number]
        if stored is None or stored.rows is None:
            return None
        mine = StoredPredictions(
            np.concatenate([o.predictions for o in runs if o.predictions is not None]),
            np.concatenate([o.indices for o in runs if o.indices is not None]))
        y, challenger, incumbent = shared_rows(mine, stored, self.task)
        return self.fold_pruner.reason(self.task.sample_losses(y, challenger),
                                       self.task.sample_losses(y, incumbent), best.number)

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
            "fold_rule": self.fold_pruner.describe(),
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
        """What the trials in flight will still use: each its expected device time (or what its
        runs have used, if more), less what its finished runs were already charged."""
        used: dict[int, float] = {}
        for (number, _), seconds in self.executor.in_flight().items():
            used[number] = used.get(number, 0.0) + seconds
        return math.fsum(
            max(used.get(number, 0.0) + entry.done_seconds, entry.estimate) - entry.done_seconds
            for number, entry in self._running.items()
        )

    def _snapshot(self) -> Snapshot:
        return Snapshot.of(self.records, self.ledger.committed(self._in_flight_seconds()),
                           self.ledger.total, len(self._running), self._phase)

    def _beat(self) -> None:
        if self.clock() - self._last_beat >= self.settings.heartbeat_seconds:
            self.lock.check()
            beat(self.handle, self._started)
            self._last_beat = self.clock()
