"""The study in its database: storage URL checks, what a storage already holds, and the
handle the driver works through.

Everything that can refuse a URL (malformed, an unknown database kind, a missing driver, an
unreachable server, an SQLite path that is not a writable database file) is checked read-only,
before anything is written, so a refused command creates no file and changes no study.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from orca_automl.credentials import parse_url, redact_url, remember
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import unwritable_ancestor
from orca_automl.search._records import TrialPlan, TrialRecord, TrialResult, to_attrs

DIRECTIONS = (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)
METRIC_NAMES = ["val_score", "cost_gflops_per_sample"]
_SQLITE_MAGIC = b"SQLite format 3\x00"


#: A study name names the study's database file and folder (`studies/<name>.db`,
#: `studies/<name>/`), so it is a plain name and never a path.
STUDY_NAME = re.compile(r"\w[\w.-]{0,127}")
_STUDY_NAME_RULE = ("1 to 128 letters, digits, '_', '-' or '.', not starting with '.' or '-', "
                    "e.g. gunpoint-wide")


def check_study_name(name: str) -> None:
    """Refuse a study name that is not plain (a path, empty, hidden, control characters)."""
    if not STUDY_NAME.fullmatch(name):
        raise OrcaInputError(f"study name {name!r} is not a plain name: use {_STUDY_NAME_RULE}")


def default_study_name(task_name: str) -> str:
    """The study name a task gives when --study is not: its name with every run of other
    characters made one '-' (a file `my data.npz` gives `my-data`)."""
    name = re.sub(r"[^\w.-]+", "-", task_name).lstrip(".-")[:128]
    if not STUDY_NAME.fullmatch(name):
        raise OrcaInputError(f"the task's name {task_name!r} cannot name the study: give --study "
                             f"NAME ({_STUDY_NAME_RULE})")
    return name


def default_storage_url(study_name: str) -> str:
    return f"sqlite:///studies/{study_name}.db"


def study_folder(url: str, study_name: str) -> Path:
    """Where a study's winners and Ray files live: next to an SQLite file, else ./studies/."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database).parent / study_name
    return Path("studies") / study_name


def check_storage_url(url: str) -> str:
    """Refuse a malformed, unusable or unreachable storage URL without writing anything;
    returns the URL to use (a plain postgresql:// URL goes through psycopg 3, the driver of
    the `postgres` extra, not SQLAlchemy's default psycopg2)."""
    remember([url])
    shown = redact_url(url)
    try:
        parsed = parse_url(url)
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise OrcaInputError(
            f"storage URL {shown!r} is malformed: give a SQLAlchemy URL such as "
            "sqlite:///studies/NAME.db or postgresql://user@host:5432/db"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    url = parsed.render_as_string(hide_password=False)  # the password percent-encoded
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise OrcaInputError(
            f"storage URL {shown!r}: unknown database kind {parsed.drivername!r}: use sqlite, "
            "postgresql or mysql"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(url, parsed)
        return url
    try:
        _check_reachable(parsed)
    except ImportError as exc:
        raise OrcaInputError(
            f"storage URL {shown!r} needs a database driver that is not installed ({exc}): "
            "install it, e.g. pip install 'orca-automl[postgres]' for postgresql"
        ) from None
    return url


def _check_sqlite_path(url: str, parsed: URL) -> None:
    database = parsed.database or ""
    if parsed.username or parsed.password or parsed.host or parsed.port:
        raise OrcaInputError(
            f"storage URL {redact_url(url)!r}: an SQLite URL names a file only, with no user, "
            "password or host: give sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    if database in ("", ":memory:") or database.startswith("file:"):
        raise OrcaInputError(
            f"storage URL {redact_url(url)!r} is not a database file: give a path, e.g. "
            "sqlite:///studies/NAME.db"
        )
    path = Path(database)
    if path.exists():
        if not path.is_file():
            raise OrcaInputError(f"storage URL {redact_url(url)!r}: {path} is not a file")
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise OrcaInputError(f"storage URL {redact_url(url)!r}: {path} is not an SQLite database")
        if not os.access(path, os.R_OK | os.W_OK):
            raise OrcaInputError(f"storage URL {redact_url(url)!r}: {path} is not readable and writable")
        foreign = _foreign_tables(path, url) if head else []
        if foreign:
            raise OrcaInputError(
                f"storage URL {redact_url(url)!r}: {path} is another application's database "
                f"(it holds tables {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}"
                "): give a new file name for the study"
            )
        return
    ancestor = unwritable_ancestor(path)
    if ancestor is not None:
        raise OrcaInputError(
            f"storage URL {redact_url(url)!r}: cannot create {path} ({ancestor} is not a writable "
            "folder)"
        )


def _foreign_tables(path: Path, url: str) -> list[str]:
    """The tables of SQLite file `path` that Optuna did not make (read-only: a refused command
    must leave another application's file as it was)."""
    from optuna.storages._rdb.models import BaseModel

    ours = {*BaseModel.metadata.tables, "alembic_version"}
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            names = sorted(str(name) for (name,) in rows)
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise OrcaInputError(f"storage URL {redact_url(url)!r}: {path} cannot be read as an "
                             f"SQLite database ({exc}): give a new file name") from None
    return [name for name in names if name not in ours and not name.startswith("sqlite_")]


def _check_reachable(parsed: URL) -> None:
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(parsed, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        shown = redact_url(parsed.render_as_string(hide_password=False))
        raise OrcaInputError(f"storage URL {shown!r} is unreachable ({reason})") from None
    finally:
        engine.dispose()


#: How long a driver keeps trying to reconnect to a database server that went away (a restart,
#: a failover) before the search stops with one line; the study is intact either way.
RECONNECT_SECONDS = 120.0


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Engine options for a search that runs for hours: SQLite in WAL mode; a server database
    with every pooled connection checked before use (a restarted server's stale connections are
    replaced, not used), connections recycled hourly, and new connections retried while the
    server is away, so a search rides through a server restart between two storage calls."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = str(Path(parsed.database or "").absolute())
        return {"creator": lambda: _sqlite_connection(path)}
    dialect = sqlalchemy.create_engine(parsed).dialect  # creates no connection
    cargs, cparams = dialect.create_connect_args(parsed)

    def connect() -> Any:
        return _retrying(lambda: dialect.connect(*cargs, **cparams), dialect.loaded_dbapi.OperationalError)

    return {"creator": connect, "pool_pre_ping": True, "pool_recycle": 3600}


def _retrying(connect: Any, transient: type[Exception], seconds: float | None = None) -> Any:
    """`connect()`, retried with a growing pause while it fails with `transient`."""
    deadline = time.monotonic() + (RECONNECT_SECONDS if seconds is None else seconds)
    pause = 0.5
    while True:
        try:
            return connect()
        except transient:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


def _sqlite_connection(path: str) -> sqlite3.Connection:
    """SQLite in WAL mode: readers (optuna-dashboard) never block the driver, and a commit
    costs no fsync (synchronous=NORMAL stays safe when a process is killed; only a power
    cut can lose the last commits). Every user attribute a trial writes is a commit."""
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def lost_connection(exc: BaseException) -> bool:
    """Whether `exc` (raised by a storage call) means the database server went away."""
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    return isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) or (
        isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated)


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
        raise OrcaInputError(f"storage {redact_url(url)!r}: {str(exc).splitlines()[0]}") from None
    try:
        summaries = storage.get_all_studies()
        return ExistingStudies(
            names=tuple(s.study_name for s in summaries),
            attrs={s.study_name: dict(s.user_attrs) for s in summaries},
            directions={s.study_name: tuple(s.directions) for s in summaries},
        )
    finally:
        storage.engine.dispose()


@dataclass(frozen=True)
class StoredPredictions:
    """A trial's predictions (the one form of `tasks.to_predictions`) in the artifact store:
    its validation predictions, the development rows they belong to (out-of-fold; None for
    the hold-out split's rows, in order), and its test predictions (full runs, baselines)."""

    val: np.ndarray
    rows: np.ndarray | None = None
    test: np.ndarray | None = None


def shared_validation_rows(stored: Sequence[StoredPredictions]) -> np.ndarray | None:
    """The development rows every one of them predicted out of fold, sorted (a bag of fewer
    folds predicted fewer); None on the hold-out split."""
    if any(p.rows is None for p in stored):
        return None
    return np.unique(reduce(np.intersect1d, [np.asarray(p.rows) for p in stored]))


def on_rows(stored: StoredPredictions, rows: np.ndarray | None) -> StoredPredictions:
    """`stored` with its validation predictions restricted to `rows`, in their order."""
    if rows is None or stored.rows is None:
        return stored
    order = np.argsort(stored.rows)
    at = order[np.searchsorted(np.asarray(stored.rows)[order], rows)]
    return replace(stored, val=np.asarray(stored.val)[at], rows=rows)


class StudyHandle:
    """An Optuna study plus the few storage operations ask/tell needs beyond `optuna.Study`,
    and the artifact store that holds each trial's validation predictions (arrays too large
    for user attributes; Optuna records each artifact on its trial)."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage,
                 artifacts: Path) -> None:
        self.study = study
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.artifacts = artifacts
        self._finished: dict[int, TrialRecord] = {}  # by trial number, parsed once

    @classmethod
    def open(
        cls, url: str, study_name: str, sampler: optuna.samplers.BaseSampler,
        new_attrs: Mapping[str, Any], artifacts: Path | None = None,
    ) -> StudyHandle:
        """Create the study (setting `new_attrs`) or load it as it is. Artifacts live in
        `artifacts` (default: the study's folder, `study_folder(url, name)/artifacts`)."""
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
        handle = cls(study, storage, artifacts or study_folder(url, study_name) / "artifacts")
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
        """Every trial as a record. A finished trial never changes (Optuna refuses to update
        one), so it is parsed once: the loop re-reads the study after every trial, and
        parsing every configuration again was most of a fake-runner search's driver time."""
        records = []
        for trial in self.study.get_trials(deepcopy=False):
            record = self._finished.get(trial.number)
            if record is None:
                record = TrialRecord.from_frozen(trial)
                if trial.state.is_finished():
                    self._finished[trial.number] = record
            records.append(record)
        return records

    def ask_like(self, source: TrialRecord, plan: TrialPlan) -> optuna.Trial:
        """A new RUNNING trial with `source`'s parameters and this plan (for retries and
        promotions)."""
        return self.create(plan, source.params, source.distributions)

    def create(
        self, plan: TrialPlan, params: Mapping[str, Any] | None = None,
        distributions: Mapping[str, Any] | None = None,
    ) -> optuna.Trial:
        """A new RUNNING trial with these parameters (none: a baseline) and this plan.

        Created in one storage call, unlike enqueue_trial + ask, so a kill in between can
        never leave a WAITING trial that a later ask would pick up as something else.
        """
        template = create_trial(
            state=TrialState.RUNNING,
            params=dict(params or {}),
            distributions=dict(distributions or {}),
            user_attrs=to_attrs(plan),
        )
        trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        # The trial was made on the database directly; the study's storage cache learns of it
        # only when it next reads the trials. Without this read, suggesting a parameter the
        # template lacks (a retry of a trial killed while its parameters were being sampled)
        # fails with KeyError on the trial id.
        self.study.get_trials(deepcopy=False)
        return optuna.Trial(self.study, trial_id)

    def trial(self, number: int) -> optuna.Trial:
        """A handle on an existing trial, to write its attributes and tell it."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        return optuna.Trial(self.study, trial_id)

    @staticmethod
    def write(trial: optuna.Trial, part: TrialPlan | TrialResult, *names: str) -> None:
        """Store a plan or result (or just the fields `names`) as the trial's user attributes."""
        for key, value in to_attrs(part, *names).items():
            trial.set_user_attr(key, value)

    def upload_predictions(self, trial: optuna.Trial, stored: StoredPredictions) -> str:
        """Store a trial's predictions as an artifact of the trial; returns the artifact's id."""
        from optuna.artifacts import FileSystemArtifactStore, upload_artifact

        self.artifacts.mkdir(parents=True, exist_ok=True)
        arrays = {"val": np.asarray(stored.val, dtype=np.float32)}
        if stored.rows is not None:
            arrays["rows"] = np.asarray(stored.rows, dtype=np.int64)
        if stored.test is not None:
            arrays["test"] = np.asarray(stored.test, dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="orca-predictions-") as tmp:
            path = Path(tmp) / f"trial-{trial.number}-predictions.npz"
            np.savez(path, allow_pickle=False, **arrays)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return upload_artifact(artifact_store=FileSystemArtifactStore(self.artifacts),
                                       file_path=str(path), study_or_trial=trial)

    def predictions(self, record: TrialRecord) -> StoredPredictions | None:
        """A trial's stored predictions, or None if it has none."""
        from optuna.artifacts import FileSystemArtifactStore, download_artifact

        artifact = record.result.predictions_artifact
        if artifact is None:
            return None
        with tempfile.TemporaryDirectory(prefix="orca-predictions-") as tmp:
            path = Path(tmp) / "predictions.npz"
            download_artifact(artifact_store=FileSystemArtifactStore(self.artifacts),
                              file_path=str(path), artifact_id=artifact)
            with np.load(path, allow_pickle=False) as data:
                return StoredPredictions(
                    data["val"], data["rows"] if "rows" in data.files else None,
                    data["test"] if "test" in data.files else None,
                )

    def finish(self, trial: optuna.Trial, result: TrialResult) -> None:
        """Record `result` on the trial, then tell Optuna its state (and objectives)."""
        self.write(trial, result)
        if result.state == TrialState.COMPLETE:
            self.study.tell(trial, result.objectives)
        else:
            self.study.tell(trial, state=result.state)
