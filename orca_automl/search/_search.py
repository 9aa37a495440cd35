"""`run_search`: the search's typed entry point, behind `orca-search` and the Python API.

Input is validated in full (budget, GPUs, search space, storage URL, task, an existing study's
fingerprint and space) before anything is created or changed; only then is Ray started and the
study opened. One call spends one budget session of the study.

Example:
    >>> from orca_automl.search import SearchOptions, run_search
    >>> result = run_search(SearchOptions(task="gunpoint", budget="10cpu-minutes"))  # doctest: +SKIP
    >>> result.winners[0].result.model_dir                                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError, OrcaStorageLost, SearchInterrupted
from orca_automl.inputs import check_finite, check_seed
from orca_automl.registry import plugin_modules, script_entries
from orca_automl.search._baselines import BaselineSaving, score_baselines
from orca_automl.search._budget import Budget, BudgetLedger, format_seconds, parse_budget
from orca_automl.search._callbacks import Resumed, SearchCallback, SearchStart
from orca_automl.search._cluster_address import check_cluster_address
from orca_automl.search._driver_lock import DriverLock, driver_lock
from orca_automl.search._executor import ExecutionPlan, Executor, check_resources, ray_execution
from orca_automl.search._loop import LoopSettings, SearchLoop, remove_partial
from orca_automl.search._pruning import PRUNING_MODES, pruners
from orca_automl.search._records import StudyKey, TrialRecord
from orca_automl.search._resume import (
    beat,
    check_resumable,
    fresh_study_name,
    last_heartbeat,
    pending_retries,
    reconcile_interrupted,
    recorded_space,
    release,
    settle_interrupt,
)
from orca_automl.search._runner import TrialRunner
from orca_automl.search._sessions import begin_session, end_session, session_spent
from orca_automl.search._space import SearchSpace
from orca_automl.search._space_file import load_space
from orca_automl.search._storage import (
    StudyHandle,
    check_storage_url,
    check_study_name,
    default_storage_url,
    default_study_name,
    lost_connection,
    read_existing,
    redact_url,
    study_folder,
)
from orca_automl.search._toolkit import Toolkit, cycle_toolkit, engine_choices
from orca_automl.search._validation import Validation, parse_validation
from orca_automl.search._winner import WinnerDecision

Execution = Callable[[ExecutionPlan, TrialRunner, Any], AbstractContextManager[Executor]]

#: The largest budget share the promotion reserve may grow to under cross-validation.
CV_MAX_RESERVE = 0.75

#: How configurations are drawn: Optuna's multi-objective TPE, or random search.
SAMPLERS = ("tpe", "random")


@dataclass(frozen=True)
class SearchOptions:
    """One search session, as `orca-search` takes it (see `orca-search --help` for each).

    task: a built-in task name or a data file/folder; budget: e.g. "8gpu-hours", "20cpu-minutes";
    search_space: a name or YAML path (None: cpu-small, or default when trials hold GPUs);
    storage: an SQLAlchemy URL (None: sqlite:///studies/<study>.db); study: its name (None: the
    task's); address: a Ray cluster to join (None: start Ray here); gpus_per_trial: None means
    1 for a GPU budget, else 0; top_k: None means the space's promotion.top_k; new_study: start
    `<study>-2`, ... instead of refusing a study made for other data or another space;
    validation: "auto", "holdout", "cv:K" or "cv:K/S" (see `parse_validation`); baselines:
    score the field's classical method and 1-NN in the study first (on the budget);
    baselines_compete: save them as models that may win, and let the ensemble mix them in
    (False: references only); ensemble: select a weighted ensemble of the fully trained
    configurations (a winner candidate); refit: under cross-validation,
    a promoted configuration also trains one model on all development data and serves it
    instead of its bag of fold models.
    """

    task: str
    budget: str
    search_space: str | None = None
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    address: str | None = None
    gpus_per_trial: float | None = None
    seed: int = 0
    top_k: int | None = None
    sampler: str = "tpe"
    pruning: str = "all"
    new_study: bool = False
    debug: bool = False
    validation: str = "auto"
    baselines: bool = True
    baselines_compete: bool = True
    ensemble: bool = True
    refit: bool = False


@dataclass(frozen=True)
class SearchResult:
    """The study after one budget session: every trial's record, where winners live, and the
    decision that picked the winner (None before any full run completed)."""

    study_name: str
    storage: str
    winners_folder: Path
    records: list[TrialRecord]
    decision: WinnerDecision | None = None

    @property
    def baselines(self) -> list[TrialRecord]:
        """The reference baselines scored in the study, best validation score first."""
        return sorted((r for r in self.records if r.plan.stage == Stage.BASELINE
                       and r.state == TrialState.COMPLETE), key=TrialRecord.rank_key)

    @property
    def winners(self) -> list[TrialRecord]:
        """Saved models (fully trained trials, ensembles, competing baselines): the winner first (see
        `WinnerDecision`), then the others by validation score (`TrialRecord.rank_key`)."""
        full = sorted((r for r in self.records if r.servable), key=TrialRecord.rank_key)
        winner = self.decision.winner if self.decision else None
        return sorted(full, key=lambda r: r.number != winner)


@dataclass(frozen=True)
class _Checked:
    """The input, validated in full; nothing has been written yet."""

    budget: Budget
    space: SearchSpace
    validation: Validation
    task: Any
    study_name: str
    url: str
    fingerprint: str
    previous_heartbeat: float | None
    folder: Path
    plan: ExecutionPlan
    space_recorded: bool = False  # the space is the study's recorded one (the packaged changed)


def run_search(
    options: SearchOptions,
    callback: SearchCallback | None = None,
    *,
    toolkit: Toolkit | None = None,
    execution: Execution = ray_execution,
) -> SearchResult:
    """Validate everything, then run one budget session of the study.

    Raises `OrcaInputError` (nothing written) for bad input; `SearchFailed` when trials keep
    failing; `SearchInterrupted` (a KeyboardInterrupt) on Ctrl-C, once the study is in order
    for the same call to resume it. `toolkit` and `execution` replace the real package and
    Ray (tests use fakes).
    """
    callback = callback or SearchCallback()
    toolkit = toolkit or cycle_toolkit()
    c = _check_input(options, toolkit)
    with driver_lock(c.url, c.study_name, c.folder) as lock:
        callback.on_start(SearchStart(c.task, c.study_name, c.url, c.space, c.budget,
                                      options.workers, c.validation, c.space_recorded))
        try:
            records, decision = _run_session(options, c, toolkit, execution, callback, lock)
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
            if not lost_connection(exc):
                raise
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
            raise OrcaStorageLost(
                f"lost the study's database {redact_url(c.url)} ({reason}): every finished "
                "trial is kept; run the same command again to resume"
            ) from exc
    result = SearchResult(c.study_name, c.url, c.folder / "winners", records, decision)
    callback.on_end(result)
    return result


def _run_session(
    options: SearchOptions, c: _Checked, toolkit: Toolkit, execution: Execution,
    callback: SearchCallback, lock: DriverLock,
) -> tuple[list[TrialRecord], WinnerDecision | None]:
    """Start Ray, open the study, repair what a killed run left, score the baselines, and run
    the loop: the session, under the study's driver lock. Ctrl-C (KeyboardInterrupt) waits
    while a new study is made, then puts the study in order (`settle_interrupt`) and stops Ray
    before `SearchInterrupted` leaves, with a second Ctrl-C ignored until then."""
    new_attrs: dict[str, Any] = {
        StudyKey.TASK: c.task.name,
        StudyKey.TASK_FINGERPRINT: c.fingerprint,
        StudyKey.SEARCH_SPACE: {"name": c.space.name, "path": str(c.space.path.resolve()),
                                "sha256": c.space.sha256, "content": c.space.content},
        StudyKey.VALIDATION: c.validation.to_attr(),
        StudyKey.WINNERS_FOLDER: str(c.folder / "winners"),
    }
    with ExitStack() as last, execution(c.plan, toolkit.runner, c.task) as executor:
        handle: StudyHandle | None = None
        try:
            with _sigint_deferred():  # a new study is made whole: its attributes, its first trial
                handle = StudyHandle.open(c.url, c.study_name,
                                          _sampler(options.sampler, options.seed), new_attrs,
                                          artifacts=c.folder / "artifacts")
                if not handle.records():  # a fresh study starts from the engine's defaults
                    handle.study.enqueue_trial(
                        c.space.engine_defaults(engine_choices(c.task.modality)),
                        skip_if_exists=True)
                    handle.set_attr(StudyKey.ENGINE_DEFAULT_TRIAL, handle.study.trials[0].number)
            beat(handle, time.time())  # names this driver to a second one at once
            return _continue_session(options, c, toolkit, executor, callback, lock, handle)
        except KeyboardInterrupt:
            if handle is None:
                raise
            last.enter_context(_sigint_ignored())  # until Ray has stopped (executor's exit)
            callback.on_interrupt()
            interrupted = settle_interrupt(handle, executor.in_flight())
            raise SearchInterrupted(_interrupted_line(handle, c.budget, len(interrupted))) from None


def _continue_session(
    options: SearchOptions, c: _Checked, toolkit: Toolkit, executor: Executor,
    callback: SearchCallback, lock: DriverLock, handle: StudyHandle,
) -> tuple[list[TrialRecord], WinnerDecision | None]:
    """The session on the opened study: repair, baselines, the loop, and its end recorded."""
    remove_partial(c.folder / "winners")
    interrupted = reconcile_interrupted(handle, c.previous_heartbeat)
    session = begin_session(handle, c.budget)
    handle.study.sampler = _sampler(options.sampler, options.seed + len(handle.records()))
    if interrupted or session.resumed:
        callback.on_resume(Resumed(len(interrupted), session.spent,
                                   len(pending_retries(handle.records()))))
    names = toolkit.baselines(c.task) if options.baselines else []
    saving = (BaselineSaving(c.folder / "winners", toolkit.save_baseline, toolkit.save_ensemble)
              if options.baselines_compete else None)
    for record in score_baselines(handle, c.task, c.validation, names, toolkit.fit_baseline,
                                  session.index, saving):
        callback.on_trial_end(record)
    spent = session_spent(handle.records(), session.index)
    loop = SearchLoop(
        handle, c.space, executor, BudgetLedger(c.budget.seconds, spent),
        LoopSettings(
            workers=options.workers,
            top_k=options.top_k or c.space.promotion.top_k,
            promotion_share=c.space.promotion.share,
            device_share=c.plan.device_share,
            seed=options.seed,
            session=session.index,
            winners_dir=c.folder / "winners",
            validation=c.validation,
            # a bag of the default's fold models is what pays most on small data: let the
            # reserve grow to pay for it (docs/benchmarks/findings.md)
            max_reserve=CV_MAX_RESERVE if c.validation.cross_validated else 0.5,
            ensemble=options.ensemble,
            baselines_compete=options.baselines_compete,
            refit=options.refit,
        ),
        callback,
        c.task,
        toolkit.save_ensemble,
        *pruners(options.pruning),
        lock=lock,
    )
    records = loop.run()
    end_session(handle, session)
    release(handle)
    return records, loop.decision


def _interrupted_line(handle: StudyHandle, budget: Budget, interrupted: int) -> str:
    """What Ctrl-C left: the trials it stopped, and what the open budget session has spent
    (all of it recorded; the same command continues that session)."""
    sessions = handle.attrs.get(StudyKey.SESSIONS) or []
    open_session = len(sessions) - 1 if sessions and not sessions[-1].get("finished") else None
    spent = (session_spent(handle.records(), open_session) if open_session is not None
             else 0.0)
    trials = "trial" if interrupted == 1 else "trials"
    return (f"{interrupted} running {trials} marked interrupted, {format_seconds(spent)} of the "
            f"{budget.text} budget spent; run the same command to resume")


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back until the block is done, then raise it (nothing to hold when Ctrl-C
    is ignored, as in a background job, or off the main thread)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while the study is put in order and Ray stops (a second Ctrl-C must not
    leave them half done); only the main thread may change signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_input(options: SearchOptions, toolkit: Toolkit) -> _Checked:
    """Budget, GPUs, workers, search space, storage URL, task and an existing study: all
    read-only, cheapest first, so bad input costs nothing and changes nothing."""
    if options.study is not None:
        check_study_name(options.study)
    budget = parse_budget(options.budget)
    check_seed(options.seed)
    for flag, value in (("--workers", options.workers), ("--top-k", options.top_k)):
        if value is not None and value < 1:
            raise OrcaInputError(f"{flag} must be 1 or more, got {value}")
    if options.sampler not in SAMPLERS:
        raise OrcaInputError(f"sampler {options.sampler!r}: use one of {', '.join(SAMPLERS)}")
    if options.pruning not in PRUNING_MODES:
        raise OrcaInputError(f"pruning {options.pruning!r}: use one of {', '.join(PRUNING_MODES)}")
    gpus = options.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if budget.kind == "gpu" else 0.0
    if check_finite(gpus, "--gpus-per-trial") < 0:
        raise OrcaInputError(f"--gpus-per-trial must be 0 or more, got {gpus:g}")
    if budget.kind == "gpu" and gpus == 0:
        raise OrcaInputError(f"budget {budget.text} counts GPU time: give --gpus-per-trial above 0")
    if options.address is None:  # a cluster's resources are checked once joined
        if gpus > 0 and not toolkit.gpu_visible():
            what = f"budget {budget.text}" if budget.kind == "gpu" else f"--gpus-per-trial {gpus:g}"
            raise OrcaInputError(
                f"{what} needs a GPU, but no GPU is visible here (torch.cuda.is_available() is "
                "False): use a CPU budget such as 2cpu-hours, or --address to run on a Ray "
                "cluster with GPUs"
            )
        check_resources(options.workers, 0.0, len(os.sched_getaffinity(0)), 0.0, "this machine")
    else:  # seconds here, where Ray itself would retry for minutes
        check_cluster_address(options.address)
    scripted = script_entries()
    if scripted:
        raise OrcaInputError(
            f"{', '.join(scripted)} registered in the script itself (__main__) cannot reach the "
            "search's worker processes: register them in a module of their own and import it"
        )
    space = load_space(options.search_space or ("default" if gpus > 0 else "cpu-small"),
                       toolkit.known_names())
    given = check_storage_url(options.storage) if options.storage else None  # before the task:
    task = toolkit.load_task(options.task, options.seed)  # loading it may take a while
    name = options.study or default_study_name(task.name)
    url = given or check_storage_url(default_storage_url(name))
    existing = read_existing(url)
    recorded = None if options.new_study else recorded_space(existing, name, space,
                                                             toolkit.known_names())
    space = (recorded or space).for_task(task.modality, toolkit.embedder_fits(task.modality),
                                         task.task_type)
    validation = parse_validation(options.validation, len(task.train) + len(task.val),
                                  options.seed)
    if validation.cross_validated:
        task.fold_indices(validation.folds, validation.seed)  # too few samples: refused here
    fingerprint = task.fingerprint()
    if options.new_study:
        name = fresh_study_name(existing, name)
    else:
        check_resumable(existing, name, fingerprint, space.sha256, space.path,
                        validation.to_attr())
    folder = study_folder(url, name).absolute()
    device_share = gpus if gpus > 0 and budget.kind != "cpu" else 1.0
    return _Checked(
        budget=budget,
        space=space,
        validation=validation,
        task=task,
        study_name=name,
        url=url,
        fingerprint=fingerprint,
        previous_heartbeat=last_heartbeat(existing, name),
        folder=folder,
        space_recorded=recorded is not None,
        plan=ExecutionPlan(options.workers, gpus, device_share, options.address, folder / "ray",
                           options.debug, tuple(plugin_modules())),
    )


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """Multi-objective TPE or random search; reseeded per session so a rerun does not replay
    the same draws."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed)
