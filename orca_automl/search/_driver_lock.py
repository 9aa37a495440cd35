"""One driver per study: an exclusive lock held for a whole search session.

Two drivers on one study would each reconcile the other's running trials as interrupted, and
both would spend one budget. So a driver takes the study's lock before it opens the study, and
a second driver is refused with one line naming the live one (from the heartbeat it records on
the study, see `_resume.beat`). The lock belongs to the operating system or the database server,
never to a file's contents, so a SIGKILLed driver releases it at once:

- SQLite: `flock` on `<study folder>/driver.lock` (the folder next to the database file);
- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection of its own;
- other databases: no lock; a driver whose heartbeat is fresh refuses the next one.

If the PostgreSQL server restarts, the lock goes with its connection: `check` takes it again
(the search goes on) or, when another driver took it meanwhile, stops this one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from orca_automl.errors import OrcaInputError, OrcaStorageLost
from orca_automl.search._records import StudyKey
from orca_automl.search._storage import read_existing, redact_url

#: A driver whose heartbeat is older than this is taken as dead (on storages without a lock).
STALE_DRIVER_SECONDS = 120.0


class DriverLock(ABC):
    """The study's lock, held by this process from `acquire` until `release`."""

    @abstractmethod
    def acquire(self) -> bool:
        """Take the lock if it is free; False if another driver holds it."""

    @abstractmethod
    def check(self) -> None:
        """Raise `StudyTakenOver` if this driver no longer holds the lock."""

    @abstractmethod
    def release(self, discard: bool = False) -> None:
        """Give the lock back (a killed process gives it back by dying); `discard`: the
        session was refused, so remove what taking the lock wrote."""


class StudyTakenOver(OrcaStorageLost):
    """Another driver holds the study's lock that this one lost (a database restart)."""


class FileLock(DriverLock):
    """`flock` on a file: released by the kernel when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._made: list[Path] = []  # what acquiring created: the file, and missing folders

    def acquire(self) -> bool:
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._made = missing
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def check(self) -> None:
        """A file lock cannot be lost while the process lives."""

    def release(self, discard: bool = False) -> None:
        if self._fd is not None:
            if discard:  # a refused session leaves no trace: what acquiring made goes
                for made in self._made:
                    with suppress(OSError):  # a folder something else has filled stays
                        if made == self.path:
                            made.unlink()
                        else:
                            made.rmdir()
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class AdvisoryLock(DriverLock):
    """A PostgreSQL session advisory lock on a connection of its own: the server releases it
    when the connection ends, including when the driver is killed."""

    def __init__(self, url: str, study_name: str) -> None:
        self._engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        digest = hashlib.sha256(f"orca-automl study {study_name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        self._connection: sqlalchemy.Connection | None = None

    def acquire(self) -> bool:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        taken = connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": self._key}).scalar()
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def check(self) -> None:
        try:
            if self._connection is not None:
                self._connection.execute(sqlalchemy.text("SELECT 1"))
                return
        except SQLAlchemyError:
            self._drop_connection()
        try:  # the server restarted: the lock went with the old connection
            taken = self.acquire()
        except SQLAlchemyError:
            return  # still away: the storage's own reconnects decide whether the search goes on
        if not taken:
            raise StudyTakenOver("another orca-search took over the study while its database "
                                 "server restarted: this one stops")

    def release(self, discard: bool = False) -> None:
        self._drop_connection()
        self._engine.dispose()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None


class NoLock(DriverLock):
    """No lock on this kind of database: the heartbeat check alone guards the study."""

    def acquire(self) -> bool:
        return True

    def check(self) -> None:
        """Nothing to lose."""

    def release(self, discard: bool = False) -> None:
        """Nothing held."""


def lock_for(url: str, study_name: str, folder: Path) -> DriverLock:
    """The lock kind of this storage: a file next to SQLite, an advisory lock in PostgreSQL."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return FileLock(folder / "driver.lock")
    if backend == "postgresql":
        return AdvisoryLock(url, study_name)
    return NoLock()


@contextmanager
def driver_lock(url: str, study_name: str, folder: Path) -> Iterator[DriverLock]:
    """Hold the study's lock for the session; refuse (one line, naming the live driver) when
    another orca-search holds it."""
    lock = lock_for(url, study_name, folder)
    driver = read_existing(url).attrs.get(study_name, {}).get(StudyKey.DRIVER)
    if isinstance(lock, NoLock):
        _refuse_if_fresh(study_name, driver)
    try:
        acquired = lock.acquire()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise OrcaInputError(f"storage URL {redact_url(url)!r}: cannot take the study's lock "
                             f"({reason})") from None
    if not acquired:
        driver = read_existing(url).attrs.get(study_name, {}).get(StudyKey.DRIVER)
        raise OrcaInputError(f"study {study_name!r} is being run by {_describe(driver)}: wait "
                             "for it to finish, or use another --study")
    refused = False
    try:
        yield lock
    except OrcaInputError:  # e.g. a Ray cluster that refused to be joined
        refused = True
        raise
    finally:
        lock.release(discard=refused)


def _describe(driver: Any) -> str:
    """The live driver as its heartbeat recorded it."""
    if not isinstance(driver, dict) or driver.get("finished"):
        return "another orca-search that is starting"
    age = time.time() - float(driver.get("heartbeat", 0.0))
    return (f"orca-search (pid {driver.get('pid')} on {driver.get('host')}, heartbeat "
            f"{age:.0f}s ago)")


def _refuse_if_fresh(study_name: str, driver: Any) -> None:
    """Without a lock: refuse while the last driver's heartbeat is fresh (the same host: while
    its process lives)."""
    if not isinstance(driver, dict) or driver.get("finished"):
        return
    pid, host = int(driver.get("pid", -1)), str(driver.get("host", ""))
    if host == socket.gethostname():
        alive = pid != os.getpid() and _pid_alive(pid)
    else:
        alive = time.time() - float(driver.get("heartbeat", 0.0)) < STALE_DRIVER_SECONDS
    if alive:
        raise OrcaInputError(f"study {study_name!r} is being run by {_describe(driver)}: wait "
                             "for it to finish, or use another --study")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
