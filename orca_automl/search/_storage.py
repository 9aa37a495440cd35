"""The study in its database: URL checks, creation and resume, and reconciliation.

Everything that can refuse a run (a malformed or unreachable URL, a study made for other task
data or another search space, a study another live orca-search is driving) is checked
read-only, before anything is written, so a refused command leaves an existing study as it
was and creates no file. Resuming then repairs what a killed run left behind: Optuna's
heartbeat does not cover ask/tell, so trials still RUNNING are marked FAIL here, charged the
device time they had used up to the killed driver's last heartbeat, and queued for a retry.

Study user attributes written here: task, task_fingerprint, search_space ({name, path,
sha256}), budget ({text, seconds, kind} of the current session), sessions, driver
({host, pid, heartbeat}), device_seconds_spent, pruning_evidence.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from orca_automl.errors import OrcaInputError
from orca_automl.search._budget import Budget
from orca_automl.search._records import (
    DEVICE_SECONDS,
    DEVICE_SECONDS_ESTIMATED,
    ERROR,
    INTERRUPTED,
    TrialRecord,
)

DIRECTIONS = (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)
METRIC_NAMES = ["val_score", "cost_gflops_per_sample"]
#: A driver whose heartbeat is older than this (on another host) is taken as dead.
STALE_DRIVER_SECONDS = 120.0
_SQLITE_MAGIC = b"SQLite format 3\x00"


def default_storage_url(study_name: str) -> str:
    return f"sqlite:///studies/{study_name}.db"


def study_folder(url: str, study_name: str) -> Path:
    """Where a study's winners and Ray files live: next to an SQLite file, else ./studies/."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database).parent / study_name
    return Path("studies") / study_name


def check_storage_url(url: str) -> None:
    """Refuse a malformed, unusable or unreachable storage URL without writing anything."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise OrcaInputError(
            f"storage URL {url!r} is malformed: give a SQLAlchemy URL such as "
            "sqlite:///studies/NAME.db or postgresql://user@host/db"
        ) from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise OrcaInputError(
            f"storage URL {url!r}: unknown database kind {parsed.drivername!r}: use sqlite, "
            "postgresql or mysql"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(url, parsed)
        return
    try:
        _check_reachable(parsed)
    except ImportError as exc:
        raise OrcaInputError(
            f"storage URL {url!r} needs a database driver that is not installed ({exc}): "
            "install it, e.g. pip install 'psycopg[binary]' for postgresql"
        ) from None


def _check_sqlite_path(url: str, parsed: URL) -> None:
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise OrcaInputError(
            f"storage URL {url!r} is not a database file: give a path, e.g. sqlite:///studies/NAME.db"
        )
    path = Path(database)
    if path.exists():
        if not path.is_file():
            raise OrcaInputError(f"storage URL {url!r}: {path} is not a file")
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise OrcaInputError(f"storage URL {url!r}: {path} is not an SQLite database")
        if not os.access(path, os.R_OK | os.W_OK):
            raise OrcaInputError(f"storage URL {url!r}: {path} is not readable and writable")
        return
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise OrcaInputError(
            f"storage URL {url!r}: cannot create {path} ({ancestor} is not a writable folder)"
        )


def _check_reachable(parsed: URL) -> None:
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(parsed, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise OrcaInputError(f"storage URL {parsed.render_as_string()!r} is unreachable ({reason})") from None
    finally:
        engine.dispose()


def _engine_kwargs(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = str(Path(parsed.database or "").absolute())
        return {"creator": lambda: _sqlite_connection(path)}
    return {"pool_pre_ping": True}


def _sqlite_connection(path: str) -> sqlite3.Connection:
    """SQLite in WAL mode: readers (optuna-dashboard) never block the driver, and a commit
    costs no fsync (synchronous=NORMAL stays safe when a process is killed; only a power
    cut can lose the last commits). Each trial writes a dozen attributes, each a commit."""
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


@dataclass(frozen=True)
class ExistingStudies:
    """What the storage already holds (read without writing)."""

    names: tuple[str, ...]
    attrs: Mapping[str, Mapping[str, Any]]
    directions: Mapping[str, tuple[StudyDirection, ...]]


def read_existing(url: str) -> ExistingStudies:
    """The studies a storage holds, read through plain connections (no WAL switch: a refused
    command must not change the file)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and (
        not Path(parsed.database or "").is_file() or Path(parsed.database or "").stat().st_size == 0
    ):
        return ExistingStudies((), {}, {})
    engine = sqlalchemy.create_engine(url)
    try:
        has_tables = "studies" in sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if not has_tables:
        return ExistingStudies((), {}, {})
    try:
        storage = RDBStorage(url, skip_table_creation=True)
    except RuntimeError as exc:  # schema of an older Optuna
        raise OrcaInputError(f"storage {url!r}: {str(exc).splitlines()[0]}") from None
    try:
        summaries = storage.get_all_studies()
        return ExistingStudies(
            names=tuple(s.study_name for s in summaries),
            attrs={s.study_name: dict(s.user_attrs) for s in summaries},
            directions={s.study_name: tuple(s.directions) for s in summaries},
        )
    finally:
        storage.engine.dispose()


def check_resumable(
    existing: ExistingStudies, study_name: str, fingerprint: str, space_sha256: str, space_path: Path
) -> None:
    """Refuse to resume a study made for other data, another space, or by another tool."""
    if study_name not in existing.names:
        return
    attrs = existing.attrs[study_name]
    hint = "use --new-study to start a new study next to it, or another --study NAME"
    if existing.directions[study_name] != DIRECTIONS or "task_fingerprint" not in attrs:
        raise OrcaInputError(f"study {study_name!r} was not made by orca-search: {hint}")
    if attrs["task_fingerprint"] != fingerprint:
        raise OrcaInputError(
            f"study {study_name!r} was made for different task data (fingerprint "
            f"{str(attrs['task_fingerprint'])[:12]}, now {fingerprint[:12]}): {hint}"
        )
    old_space = attrs.get("search_space") or {}
    if old_space.get("sha256") != space_sha256:
        raise OrcaInputError(
            f"study {study_name!r} was made with another search space ({old_space.get('path')}, "
            f"sha256 {str(old_space.get('sha256'))[:12]}; now {space_path}, {space_sha256[:12]}): {hint}"
        )
    _check_no_live_driver(study_name, attrs.get("driver"))


def _check_no_live_driver(study_name: str, driver: Any) -> None:
    if not isinstance(driver, dict) or driver.get("finished"):
        return
    pid, host = int(driver.get("pid", -1)), str(driver.get("host", ""))
    age = time.time() - float(driver.get("heartbeat", 0.0))
    if host == socket.gethostname():
        alive = pid != os.getpid() and _pid_alive(pid)
    else:
        alive = age < STALE_DRIVER_SECONDS
    if alive:
        raise OrcaInputError(
            f"study {study_name!r} is being run by orca-search (pid {pid} on {host}, heartbeat "
            f"{age:.0f}s ago): wait for it to finish or use another --study"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fresh_study_name(existing: ExistingStudies, name: str) -> str:
    """`name`, or `name-2`, `name-3`, ... : the first one the storage does not hold."""
    if name not in existing.names:
        return name
    k = 2
    while f"{name}-{k}" in existing.names:
        k += 1
    return f"{name}-{k}"


class StudyHandle:
    """An Optuna study plus the few storage operations ask/tell needs beyond `optuna.Study`."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
        self.study = study
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)

    @classmethod
    def open(
        cls, url: str, study_name: str, sampler: optuna.samplers.BaseSampler,
        new_attrs: Mapping[str, Any],
    ) -> StudyHandle:
        """Create the study (setting `new_attrs`) or load it as it is."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            Path(parsed.database or "").absolute().parent.mkdir(parents=True, exist_ok=True)
        storage = RDBStorage(url, engine_kwargs=_engine_kwargs(url))
        try:
            storage.get_study_id_from_name(study_name)
            created = False
        except KeyError:
            created = True
        study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=sampler,
            directions=list(DIRECTIONS), load_if_exists=True,
        )
        handle = cls(study, storage)
        if created:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(METRIC_NAMES)
            for key, value in new_attrs.items():
                study.set_user_attr(key, value)
        return handle

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.storage.get_study_user_attrs(self.study_id))

    def set_attr(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    def records(self) -> list[TrialRecord]:
        return [TrialRecord.from_frozen(t) for t in self.study.get_trials(deepcopy=False)]

    def ask(self) -> optuna.Trial:
        return self.study.ask()

    def ask_like(self, source: TrialRecord, user_attrs: Mapping[str, Any]) -> optuna.Trial:
        """A new RUNNING trial with `source`'s parameters (for retries and promotions).

        Created in one storage call, unlike enqueue_trial + ask, so a kill in between can
        never leave a WAITING trial that a later ask would pick up as something else.
        """
        template = create_trial(
            state=TrialState.RUNNING,
            params=source.params,
            distributions=source.distributions,
            user_attrs=dict(user_attrs),
        )
        trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        # The trial was made on the database directly; the study's storage cache learns of it
        # only when it next reads the trials. Without this read, suggesting a parameter the
        # template lacks (a retry of a trial killed while its parameters were being sampled)
        # fails with KeyError on the trial id.
        self.study.get_trials(deepcopy=False)
        return optuna.Trial(self.study, trial_id)

    def beat(self, started: float) -> None:
        """Record that this driver is alive (read by resumes and by other drivers)."""
        self._set_driver(started=started, finished=False)

    def release(self) -> None:
        """Mark this driver as finished, so the next run needs no liveness check."""
        self._set_driver(started=(self.attrs.get("driver") or {}).get("started"), finished=True)

    def _set_driver(self, started: float | None, finished: bool) -> None:
        self.set_attr("driver", {"host": socket.gethostname(), "pid": os.getpid(),
                                 "started": started, "heartbeat": time.time(), "finished": finished})


def reconcile_interrupted(handle: StudyHandle, last_heartbeat: float | None) -> list[TrialRecord]:
    """Mark trials a killed run left RUNNING as FAIL; returns them (to be retried).

    Each is charged the device time it had used by the killed driver's last heartbeat, the
    best evidence left of how long it ran.
    """
    failed = []
    for frozen in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.from_frozen(frozen)
        started = frozen.datetime_start.timestamp() if frozen.datetime_start else time.time()
        until = last_heartbeat if last_heartbeat is not None else started
        seconds = max(0.0, until - started) * record.device_share
        trial_id = handle.storage.get_trial_id_from_study_id_trial_number(handle.study_id, frozen.number)
        trial = optuna.Trial(handle.study, trial_id)
        trial.set_user_attr(ERROR, "interrupted: the orca-search run driving this trial stopped "
                                   "before it finished; a later run retries it as a new trial")
        trial.set_user_attr(INTERRUPTED, True)
        trial.set_user_attr(DEVICE_SECONDS, seconds)
        trial.set_user_attr(DEVICE_SECONDS_ESTIMATED, True)
        handle.study.tell(frozen.number, state=TrialState.FAIL)
        failed.append(record)
    return failed


def pending_retries(records: list[TrialRecord]) -> list[TrialRecord]:
    """Interrupted short trials that no later trial has retried yet, oldest first."""
    retried = {r.retry_of for r in records if r.retry_of is not None}
    return [
        r for r in sorted(records, key=lambda r: r.number)
        if r.interrupted and r.stage == "short" and r.number not in retried
    ]


@dataclass(frozen=True)
class Session:
    """One budget: a fresh run of the command opens a session; a rerun after a kill
    continues the unfinished one, with what it already spent deducted."""

    index: int
    budget: Budget
    spent: float
    resumed: bool


def begin_session(handle: StudyHandle, budget: Budget) -> Session:
    sessions = list(handle.attrs.get("sessions") or [])
    resumed = bool(sessions) and not sessions[-1].get("finished", False)
    entry = {**budget.to_attr(), "started": time.time(), "finished": False}
    if resumed:
        entry["started"] = sessions[-1].get("started", entry["started"])
        sessions[-1] = entry
    else:
        sessions.append(entry)
    index = len(sessions) - 1
    handle.set_attr("sessions", sessions)
    handle.set_attr("budget", budget.to_attr())
    spent = session_spent(handle.records(), index)
    return Session(index, budget, spent, resumed)


def end_session(handle: StudyHandle, session: Session) -> None:
    sessions = list(handle.attrs.get("sessions") or [])
    sessions[session.index] = {**sessions[session.index], "finished": True,
                               "spent": session_spent(handle.records(), session.index)}
    handle.set_attr("sessions", sessions)


def session_spent(records: list[TrialRecord], index: int) -> float:
    return math.fsum(r.device_seconds for r in records if r.session == index and r.finished)


def total_spent(records: list[TrialRecord]) -> float:
    return math.fsum(r.device_seconds for r in records if r.finished)
