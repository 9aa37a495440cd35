"""Does orca-search survive being killed? Fault injection on a real search, one storage per call.

Runs `orca-search --workers 1` as a subprocess (real model training) and SIGKILLs its process
group at --kills points: seeded random points of the budget (when the device time spent and in
flight first reaches a drawn share of it), one while a FULL-stage trial (a promotion) is
running, and one while a winner is being saved (the winners folder is polled every 2 ms). After
each kill the same command runs again, until a run completes with exit 0. Once, the Ray worker
process running a trial is SIGKILLed instead of the driver: the driver must record that trial as
FAIL and go on. After each kill and at the end the study is read read-only and checked: no
COMPLETE trial lost or changed, no trial left RUNNING, the budget spent never decreasing nor
overrunning by more than one trial, no configuration fully trained twice, every saved winner
loading and predicting, and the study opening in optuna-dashboard.

Rows of each storage are logged beside the table, so an SQLite call and a PostgreSQL call made
separately (same settings) fill one table.

    python benchmarks/faults.py --storage sqlite                       # ~15 minutes
    python benchmarks/faults.py --storage postgresql+psycopg://u:pw@127.0.0.1:5432/db
    python benchmarks/faults.py --storage postgresql    # the URL in $ORCA_AUTOML_TEST_POSTGRES
    python benchmarks/faults.py --smoke --out /tmp/faults               # fake trials, for CI

A fresh study (faults-<time>) runs in a temporary folder (its SQLite file, winners, Ray files);
both go at the end, the study's rows in a PostgreSQL database too, unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from _report import OUT_DIR, write_report  # benchmarks/ is on sys.path when run as a script
from _runs import RunLog
from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError
from orca_automl.search import StudyKey, TrialRecord, check_storage_url, redact_url, study_folder

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Ray titles a worker process `ray::<function>` while it runs a task (`ray::IDLE` between
#: tasks); the search's Ray task is `_execute_in_worker` (orca_automl/search/_executor.py).
WORKER_TITLE = b"ray::_execute_in_worker"
#: What a driver refused by the study's lock says (exit code 2).
LOCK_REFUSAL = "is being run by"
SAVE_POLL_SECONDS = 0.002
STUDY_POLL_SECONDS = 0.25
INVARIANTS = ("complete kept", "none left RUNNING", "spent never down", "within budget",
              "promoted once", "winners load", "dashboard")
STORAGES = ("sqlite", "postgresql")
#: The table's columns, in order (the run log stores rows with sorted keys).
COLUMNS = ("#", "storage", "kill", "when (s)", "landed", "mid-save", "complete / running",
           "spent at kill (s)", "spent after (s)", "rerun exit", "procs left at rerun",
           *INVARIANTS)


def say(text: str) -> None:
    """One progress line, cut to 80 columns."""
    print(text[:80], flush=True)


# ------------------------------------------------------------------------ the study, read-only
@dataclass(frozen=True)
class StudyState:
    """The study as a read-only reader sees it at one moment."""

    records: dict[int, TrialRecord]
    attrs: dict[str, Any]

    @property
    def spent(self) -> float:
        return float(self.attrs.get(StudyKey.DEVICE_SECONDS_SPENT) or 0.0)

    @property
    def budget(self) -> float:
        return float((self.attrs.get(StudyKey.BUDGET) or {}).get("seconds") or math.inf)

    def in_state(self, state: TrialState) -> list[TrialRecord]:
        return [r for r in self.records.values() if r.state == state]

    def started_since(self, since: float, stage: Stage) -> list[TrialRecord]:
        """RUNNING trials of `stage` started after `since` (epoch): by the run started then,
        not left RUNNING by a killed one."""
        return [r for r in self.in_state(TrialState.RUNNING) if r.plan.stage == stage
                and r.started is not None and r.started.timestamp() >= since]

    def in_flight(self, since: float) -> float:
        """Device time the running trials' runs started after `since` (epoch) have used."""
        now = time.time()
        return math.fsum((now - run.started) * r.plan.device_share
                         for r in self.in_state(TrialState.RUNNING) for run in r.result.runs
                         if run.device_seconds is None and run.started >= since)


def read_only_storage(url: str) -> RDBStorage:
    """The study's database opened so that nothing can be written: an SQLite file in read-only
    mode, a PostgreSQL session whose transactions are read-only."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"poolclass": NullPool}
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").absolute()
        if not path.is_file():
            raise FileNotFoundError(path)
        parsed = parsed.set(database=f"file:{path}?mode=ro", query={"uri": "true"})
    else:
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    return RDBStorage(parsed.render_as_string(hide_password=False), engine_kwargs=kwargs,
                      skip_compatibility_check=True, skip_table_creation=True)


def read_state(url: str, study: str) -> StudyState | None:
    """The study now, or None while the database or the study does not exist yet."""
    try:
        storage = read_only_storage(url)
    except (FileNotFoundError, SQLAlchemyError, StorageInternalError):  # no tables yet
        return None
    try:
        study_id = storage.get_study_id_from_name(study)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        attrs = storage.get_study_user_attrs(study_id)
    except (KeyError, SQLAlchemyError, StorageInternalError):
        return None
    finally:
        storage.engine.dispose()
    return StudyState({t.number: TrialRecord.from_frozen(t) for t in trials}, dict(attrs))


# ------------------------------------------------------------------------------- processes
def session_pids(session: int) -> list[int]:
    """Live (not zombie) processes of a session: a driver started with start_new_session leads
    one, and Ray's processes (workers included, which take process groups of their own) stay in
    it."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
            if int(fields[3]) == session and fields[0] != "Z":
                found.append(int(entry))
    return found


def busy_workers(session: int) -> list[int]:
    """Ray worker processes of the session that are running a trial."""
    busy = []
    for pid in session_pids(session):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(WORKER_TITLE):
                busy.append(pid)
    return busy


@dataclass(frozen=True)
class Launch:
    """The command every run repeats, where it runs, and the study it drives."""

    command: list[str]
    env: dict[str, str]
    work: Path
    url: str
    study: str
    timeout: float

    @property
    def winners(self) -> Path:
        return (self.work / study_folder(self.url, self.study) / "winners").resolve()


class Driver:
    """One run of the command, in a session of its own; relaunched once (after a second) when
    the study's lock refuses it, as a rerun right after a kill must not be."""

    def __init__(self, launch: Launch, index: int) -> None:
        self.launch = launch
        self.log = launch.work / f"run-{index}.log"
        self.started = time.monotonic()
        self.lock_retry = False
        self.sessions: list[int] = []
        self._start()

    def _start(self) -> None:
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(self.launch.command, cwd=self.launch.work,
                                         env=self.launch.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.sessions.append(self.proc.pid)
        self.epoch = time.time()

    def alive(self) -> bool:
        """Whether the current process runs (no relaunch: for a second thread)."""
        return self.proc.poll() is None

    def running(self) -> bool:
        """Whether the run goes on: its process runs, or was relaunched after the lock
        refused it."""
        if self.proc.poll() is None:
            if time.monotonic() - self.started > self.launch.timeout:
                self.kill()
                raise SystemExit(f"a run went past --timeout {self.launch.timeout:.0f}s: "
                                 f"see {self.log}")
            return True
        if (self.proc.returncode == 2 and not self.lock_retry
                and LOCK_REFUSAL in self.log.read_text()):
            self.lock_retry = True
            time.sleep(1.0)
            self._start()
            return True
        return False

    def kill(self) -> None:
        """SIGKILL the driver's process group (the driver, Ray's GCS, raylet and agents)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self) -> int:
        while self.running():
            time.sleep(STUDY_POLL_SECONDS)
        return self.proc.returncode

    def exit_text(self, killed_by: str | None = None) -> str:
        """Its exit code, or the kill that ended it; a refusal by the lock first, if any."""
        code = str(self.proc.returncode) if killed_by is None else f"killed (#{killed_by})"
        return f"2 (lock), then {code}" if self.lock_retry else code

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-15:])


# ---------------------------------------------------------------------------- kill points
@dataclass(frozen=True)
class Fired:
    """A kill point reached; for a winner save, the winners folder's new entries."""

    new_entries: tuple[str, ...] = ()


class KillPoint(ABC):
    """Where a run is killed: `wait` returns once it is reached (None: the run ended first)."""

    @abstractmethod
    def wait(self, driver: Driver) -> Fired | None:
        """Block until the point is reached or the run ends."""

    @property
    @abstractmethod
    def label(self) -> str:
        """The point in a few words (the table's "kill" column)."""


@dataclass(frozen=True)
class BudgetShare(KillPoint):
    """When the device time spent plus that of this run's trials in flight reaches `share`
    of the budget (right after the study is opened, if the earlier runs spent it already)."""

    share: float

    @property
    def label(self) -> str:
        return f"random ({self.share:.0%} of budget)"

    def wait(self, driver: Driver) -> Fired | None:
        launch = driver.launch
        while driver.running():
            state = read_state(launch.url, launch.study)
            if state is not None and StudyKey.DEVICE_SECONDS_SPENT in state.attrs and (
                    state.spent + state.in_flight(driver.epoch) >= self.share * state.budget):
                return Fired()
            time.sleep(STUDY_POLL_SECONDS)
        return None


@dataclass(frozen=True)
class FullRunning(KillPoint):
    """`delay` seconds after a FULL-stage trial this run started is first seen running."""

    delay: float

    @property
    def label(self) -> str:
        return f"FULL running (+{self.delay:.1f}s)"

    def wait(self, driver: Driver) -> Fired | None:
        launch = driver.launch
        while driver.running():
            state = read_state(launch.url, launch.study)
            if state and state.started_since(driver.epoch, Stage.FULL):
                deadline = time.monotonic() + self.delay
                while time.monotonic() < deadline:
                    if not driver.running():
                        return None
                    time.sleep(0.05)
                return Fired()
            time.sleep(STUDY_POLL_SECONDS)
        return None


class WinnerSave(KillPoint):
    """As soon as a new entry appears in the winners folder (a save's temporary folder, or
    the winner folder itself when the save was quicker than the poll)."""

    @property
    def label(self) -> str:
        return "winner save"

    def wait(self, driver: Driver) -> Fired | None:
        folder = driver.launch.winners
        seen, stamp = _entries(folder), _mtime(folder)
        while driver.running():
            now = _mtime(folder)
            if now != stamp:
                stamp, names = now, _entries(folder)
                if names - seen:
                    return Fired(tuple(sorted(names - seen)))
                seen = names
            time.sleep(SAVE_POLL_SECONDS)
        return None


def _mtime(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


def kill_plan(kills: int, seed: int, delay: float) -> tuple[list[KillPoint], float]:
    """The driver's kill points: kills - 2 seeded random budget shares in [0.02, 0.5] (mostly
    the short-trial phase), a FULL trial running (killed a seeded 0..delay seconds in), and a
    winner save; and how long (seeded, 0..delay / 5 s) a short trial runs before its worker
    is killed."""
    rng = random.Random(seed)
    shares = sorted(rng.uniform(0.02, 0.5) for _ in range(kills - 2))
    points = [*(BudgetShare(s) for s in shares), FullRunning(rng.uniform(0.0, delay)),
              WinnerSave()]
    return points, rng.uniform(0.0, delay / 5)


# ------------------------------------------------------------------------------- observation
WinnerCheck = Callable[[Path], str | None]


def fake_winner_check(folder: Path) -> str | None:
    """The fake runner's winner (smoke): its meta.json, or an ensemble's bag.json and members."""
    try:
        if (folder / "bag.json").is_file():
            bag = json.loads((folder / "bag.json").read_text())
            members = [folder / "members" / str(i) for i in range(bag["members"])]
            return next((f"{m} missing" for m in members if not (m / "meta.json").is_file()), None)
        json.loads((folder / "meta.json").read_text())["trial"]
    except (OSError, ValueError, KeyError) as exc:
        return f"{folder.name}: {exc}"
    return None


def model_winner_check(task: str, seed: int) -> WinnerCheck:
    """A saved winner loads (`orca_automl.cycle.load_model`) and predicts the task's test inputs."""
    from orca_automl.cycle import load_model
    from orca_automl.tasks import load_task

    inputs = load_task(task, seed=seed).test.X[:16]

    def check(folder: Path) -> str | None:
        try:
            predicted = np.asarray(load_model(folder).predict(inputs))
        except Exception as exc:  # noqa: BLE001 -- any failure to load or predict is the finding
            return f"{folder.name}: {type(exc).__name__}: {exc}"[:200]
        return None if len(predicted) == len(inputs) else f"{folder.name}: {len(predicted)} predictions"

    return check


@dataclass
class Observation:
    """The study after a kill (or a run's end), and what the checks that need it found
    (None: held; text: the failure; "-": not checked)."""

    state: StudyState | None
    winners: str | None = "-"
    dashboard: str | None = "-"


class Observer:
    """Reads the study and runs the checks that need the files and a dashboard; a winner folder
    is loaded once per version of it."""

    def __init__(self, launch: Launch, check: WinnerCheck) -> None:
        self.launch = launch
        self.check = check
        self._checked: dict[tuple[str, int], str | None] = {}

    def observe(self) -> Observation:
        """The study and its checks while no driver runs (a dashboard reading a live SQLite
        file is advised against)."""
        state = read_state(self.launch.url, self.launch.study)
        return Observation(state, self.winners(state),
                           self.dashboard() if state is not None else "-")

    def winners(self, state: StudyState | None) -> str | None:
        """Every winner folder in sight (not a save's hidden temporary folder) and every
        servable trial's saved model loads and predicts."""
        folders = {p for p in self.launch.winners.glob("trial-*") if p.is_dir()}
        if state is not None:
            for r in state.records.values():
                if r.servable:
                    folders.add(Path(r.result.model_dir or ""))
        for folder in sorted(folders):
            if not folder.is_dir():
                return f"{folder.name}: missing"
            key = (str(folder), folder.stat().st_mtime_ns)
            if key not in self._checked:
                self._checked[key] = self.check(folder)
            if self._checked[key] is not None:
                return self._checked[key]
        return None

    def dashboard(self) -> str | None:
        """optuna-dashboard serves the study: /api/studies lists it and its page's data loads."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([str(BIN / "optuna-dashboard"), self.launch.url, "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=self.launch.work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        base = f"http://127.0.0.1:{port}/api/studies"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(base, timeout=10) as reply:
                        studies = json.load(reply)["study_summaries"]
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        return "optuna-dashboard did not answer"
                    time.sleep(0.3)
            ids = [s["study_id"] for s in studies if s["study_name"] == self.launch.study]
            if not ids:
                return "the study is not listed"
            with urllib.request.urlopen(f"{base}/{ids[0]}", timeout=30) as reply:
                trials = json.load(reply)["trials"]
            return None if reply.status == 200 and trials else "the study's trials did not load"
        except (OSError, ValueError, KeyError) as exc:
            return f"dashboard: {exc}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# ------------------------------------------------------------------------------ invariants
def complete_kept(before: StudyState | None, after: StudyState) -> str | None:
    """Every trial COMPLETE before is COMPLETE after, with the same values and device time."""
    for n, r in (before.records if before else {}).items():
        now = after.records.get(n)
        if r.state != TrialState.COMPLETE:
            continue
        if now is None or now.state != TrialState.COMPLETE:
            return f"trial {n} now {None if now is None else now.state.name}"
        if now.values != r.values or now.result.device_seconds != r.result.device_seconds:
            return f"trial {n} changed"
    return None


def none_left_running(before: StudyState | None, final: StudyState | None,
                      completed: bool) -> str | None:
    """After a completed run no trial is RUNNING, and each one a kill left RUNNING is FAIL,
    marked interrupted."""
    if not completed or final is None:
        return "no run completed"
    running = [n for n, r in final.records.items() if r.state == TrialState.RUNNING]
    if running:
        return f"trials {running} RUNNING"
    for n in (r.number for r in (before.in_state(TrialState.RUNNING) if before else [])):
        now = final.records.get(n)
        if now is None:
            return f"trial {n} lost"
        if now.state != TrialState.FAIL or not now.result.interrupted:
            return f"trial {n} {now.state.name}, interrupted={now.result.interrupted}"
    return None


def spent_never_down(before: StudyState | None, after: StudyState) -> str | None:
    spent = before.spent if before else 0.0
    return None if after.spent >= spent - 1e-6 else f"{spent:.1f}s -> {after.spent:.1f}s"


def within_budget(after: StudyState) -> str | None:
    """The budget spent exceeds the budget by at most one trial's device time."""
    longest = max((r.result.device_seconds for r in after.records.values() if r.finished),
                  default=0.0)
    limit = after.budget + longest
    return None if after.spent <= limit + 1e-6 else f"{after.spent:.1f}s > {limit:.1f}s"


def promoted_once(after: StudyState) -> str | None:
    """No short trial, and no configuration, has two COMPLETE full-schedule trials."""
    full = [r for r in after.in_state(TrialState.COMPLETE) if r.plan.stage == Stage.FULL]
    sources = [r.plan.promoted_from for r in full]
    configs = [json.dumps(r.plan.config.to_dict() if r.plan.config else None, sort_keys=True)
               for r in full]
    if len(set(sources)) < len(sources) or len(set(configs)) < len(configs):
        return f"full trials {[r.number for r in full]} from {sources}"
    return None


# ------------------------------------------------------------------------------------ a kill
@dataclass
class Kill:
    """One kill: the driver's (point set) or a worker's; what it hit and what followed."""

    number: str
    point: str
    when: float
    observation: Observation
    landed: str = ""
    mid_save: str = "-"
    rerun_exit: str = "-"
    rerun_left: int = 0


def landed(state: StudyState | None, winners: Path, point: KillPoint, fired: Fired,
           since: float) -> tuple[str, str]:
    """Where a driver kill landed, in words, and whether it cut a winner save short (`since`:
    when the killed run started)."""
    if state is None:
        return "startup: no study in the database yet", "-"
    running = state.in_state(TrialState.RUNNING)
    words = []
    for r in running:
        done = sum(run.device_seconds is not None for run in r.result.runs)
        runs = max(1, len(r.plan.folds) + r.plan.refit)
        if r.started is not None and r.started.timestamp() < since:
            words.append(f"startup: trial {r.number} still RUNNING from the run killed before")
        else:
            words.append(f"trial {r.number} {r.plan.stage.value} run {min(done + 1, runs)}/{runs}")
    if not running:
        full_done = any(r.plan.stage == Stage.FULL and r.finished for r in state.records.values())
        words.append("after the promotions" if full_done else "between trials")
    mid_save = "-"
    if isinstance(point, WinnerSave):
        left = sorted(n for n in _entries(winners) if n.startswith("."))
        told = {f"trial-{r.number}" for r in state.records.values() if r.finished}
        untold = [n for n in fired.new_entries if n.startswith("trial-") and n not in told]
        if left:
            mid_save = "yes"
            words.append(f"save under way ({left[0][:16]}... left)")
        else:
            mid_save = "no"
            words.append(f"{', '.join(untold)} saved, trial not yet told"
                         if untold else "the save had finished")
    return "; ".join(words), mid_save


def kill_worker(driver: Driver, delay: float, attempts: int = 3) -> Kill | None:
    """SIGKILL the Ray worker running a short trial `delay` seconds after that trial is first
    seen running; returns once the driver has recorded the trial (None: the run ended first)."""
    launch = driver.launch
    for _ in range(attempts):
        target = _busy_short_trial(driver, delay)
        if target is None:
            return None
        number, pid = target
        os.kill(pid, signal.SIGKILL)
        when = time.monotonic()
        while driver.alive():
            state = read_state(launch.url, launch.study)
            if state is not None and state.records[number].state != TrialState.RUNNING:
                break
            time.sleep(STUDY_POLL_SECONDS)
        else:
            return None
        record = state.records[number]
        if record.state == TrialState.COMPLETE:  # the kill fell between two of its runs: again
            continue
        return Kill("W", "Ray worker", when, Observation(state),
                    landed=f"trial {number} {record.plan.stage.value} -> {record.state.name}: "
                           f"{(record.result.error or '-').split('. ')[0][:90]}")
    return None


def _busy_short_trial(driver: Driver, delay: float) -> tuple[int, int] | None:
    """(trial number, worker pid) of a short trial running for `delay` seconds and the busy
    worker (--workers 1: the one running it), or None if the run ends first."""
    first_seen: dict[int, float] = {}
    while driver.alive():
        state = read_state(driver.launch.url, driver.launch.study)
        running = [r.number for r in (state.started_since(driver.epoch, Stage.SHORT)
                                      if state else [])]
        for number in running:
            first_seen.setdefault(number, time.monotonic())
        ready = [n for n in running if time.monotonic() - first_seen[n] >= delay]
        busy = busy_workers(driver.proc.pid) if ready else []
        if busy:
            return ready[0], busy[0]
        time.sleep(0.1)
    return None


# --------------------------------------------------------------------------------- a session
@dataclass
class Outcome:
    """What one storage's sequence of runs did."""

    kills: list[Kill] = field(default_factory=list)
    final: Observation | None = None
    final_exit: int | None = None
    launches: int = 0
    wall: float = 0.0
    left_at_end: int = 0


def run_sequence(launch: Launch, plan: list[KillPoint], worker_delay: float,
                 observer: Observer, kind: str) -> tuple[Outcome, list[KillPoint]]:
    """Run, kill at each point, rerun, until a run ends; returns what happened and the points
    not reached (the search finished before them). The worker kill is tried alongside, in each
    run until it is made."""
    outcome = Outcome()
    start = time.monotonic()
    pending = list(plan)
    drivers: list[Driver] = []
    worker: list[Kill | None] = [None]  # set by the worker-kill thread

    def kill_a_worker(driver: Driver) -> None:
        worker[0] = kill_worker(driver, worker_delay)

    try:
        while True:
            left = sum(len(session_pids(s)) for d in drivers for s in d.sessions)
            outcome.launches += 1
            driver = Driver(launch, outcome.launches)
            drivers.append(driver)
            made = _driver_kills(outcome)
            previous = made[-1] if made else None
            if previous is not None:
                previous.rerun_left = left
            thread = None
            if worker[0] is None:
                thread = threading.Thread(target=kill_a_worker, args=(driver,))
                thread.start()
            point = pending[0] if pending else None
            fired = point.wait(driver) if point else None
            if fired is not None:
                driver.kill()
            else:
                outcome.final_exit = driver.wait()
            when = time.monotonic() - start
            if thread is not None:
                thread.join()
                if worker[0] is not None:
                    worker[0].when -= start
                    outcome.kills.append(worker[0])
                    say(f"{kind} W {worker[0].when:.0f}s worker killed: {worker[0].landed}")
            if fired is None or point is None:
                if previous is not None:
                    previous.rerun_exit = driver.exit_text()
                say(f"{kind} run {outcome.launches}: exit {driver.exit_text()} after "
                    f"{time.monotonic() - driver.started:.0f}s")
                if outcome.final_exit != 0:
                    print(f"the run failed ({driver.log}):\n{driver.tail()}", flush=True)
                outcome.final = observer.observe()
                break
            pending.pop(0)
            number = str(len(_driver_kills(outcome)) + 1)
            if previous is not None:
                previous.rerun_exit = driver.exit_text(killed_by=number)
            observation = observer.observe()
            where, mid_save = landed(observation.state, launch.winners, point, fired,
                                     driver.epoch)
            outcome.kills.append(Kill(number, point.label, when, observation, landed=where,
                                      mid_save=mid_save))
            say(f"{kind} #{number} {when:.0f}s {point.label}: {where}")
    finally:
        outcome.wall = time.monotonic() - start
        for session in (s for d in drivers for s in d.sessions):  # whatever the runs left
            for pid in session_pids(session):
                outcome.left_at_end += 1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    return outcome, pending


def _driver_kills(outcome: Outcome) -> list[Kill]:
    return [k for k in outcome.kills if k.number != "W"]


def kill_rows(outcome: Outcome, unreached: list[KillPoint], kind: str) -> list[dict[str, object]]:
    """One row per kill: where it landed and each invariant, checked between the study at the
    kill and after the run that followed it (the next kill, or the end)."""
    final = outcome.final.state if outcome.final else None
    completed = outcome.final_exit == 0
    observations = [k.observation for k in outcome.kills] + (
        [outcome.final] if outcome.final else [])
    rows: list[dict[str, object]] = []
    for i, kill in enumerate(outcome.kills):
        before = kill.observation.state
        after_obs = observations[i + 1] if i + 1 < len(observations) else None
        after = after_obs.state if after_obs else None
        checks: dict[str, str | None] = dict.fromkeys(INVARIANTS, "no later study state")
        if after is not None and after_obs is not None:
            checks = {
                "complete kept": complete_kept(before, after),
                # a live reading (the worker kill) has trials a later run may finish normally
                "none left RUNNING": none_left_running(
                    before if kill.number != "W" else None, final, completed),
                "spent never down": spent_never_down(before, after),
                "within budget": within_budget(after),
                "promoted once": promoted_once(after),
                "winners load": _both(kill.observation.winners, after_obs.winners),
                "dashboard": _both(kill.observation.dashboard, after_obs.dashboard),
            }
        complete = len(before.in_state(TrialState.COMPLETE)) if before else 0
        running = len(before.in_state(TrialState.RUNNING)) if before else 0
        rows.append({
            "#": kill.number, "storage": kind, "kill": kill.point, "when (s)": f"{kill.when:.1f}",
            "landed": kill.landed, "mid-save": kill.mid_save,
            "complete / running": f"{complete} / {running}",
            "spent at kill (s)": f"{before.spent:.1f}" if before else "0.0",
            "spent after (s)": f"{after.spent:.1f}" if after else "-",
            "rerun exit": kill.rerun_exit,
            "procs left at rerun": str(kill.rerun_left) if kill.number != "W" else "-",
            **{name: "yes" if why is None else f"NO: {why}" for name, why in checks.items()},
        })
    first = len(_driver_kills(outcome)) + 1
    for j, point in enumerate(unreached):
        rows.append({"#": str(first + j), "storage": kind, "kill": point.label,
                     "landed": "not reached: the search finished first"})
    return rows


def _both(at_kill: str | None, after: str | None) -> str | None:
    """A check made at the kill and after the rerun: held if neither failed ("-": not made)."""
    failed = [x for x in (at_kill, after) if x not in (None, "-")]
    return failed[0] if failed else None


def summary_line(kind: str, rows: list[dict[str, object]], outcome: Outcome,
                 planned: int) -> str:
    kills = [r for r in rows if r["#"] != "W" and "when (s)" in r]
    held = [r for r in kills if all(r[name] == "yes" for name in INVARIANTS)]
    worker = [r for r in rows if r["#"] == "W"]
    worker_ok = bool(worker) and all(worker[0][name] == "yes" for name in INVARIANTS) and \
        "-> FAIL" in str(worker[0]["landed"])
    final = outcome.final.state if outcome.final else None
    trials = len(final.records) if final else 0
    winners = sum(r.servable for r in final.records.values()) if final else 0
    return (f"- {kind}: kills survived {len(held)} of {len(kills)} ({planned} planned); worker "
            f"kill survived: {'yes' if worker_ok else 'no'}; final run exit "
            f"{outcome.final_exit}; {outcome.launches} runs, {outcome.wall:.0f} s wall; "
            f"{trials} trials, {winners} saved winners; processes left at the end: "
            f"{outcome.left_at_end}.")


# ------------------------------------------------------------------------------------- main
NOTES = """\
Each kill SIGKILLs the driver's process group (the driver, Ray's GCS, raylet and agents; a Ray
worker has a process group of its own and stops with its raylet); the same command then runs
again, at once. Kill points: seeded random shares of the budget (device time spent plus that of
the run's trials in flight, polled every 0.25 s from the study), a FULL-stage trial running
(killed a seeded delay after it is first seen), a winner being saved (the winners folder polled
every 2 ms; "mid-save" says whether a save's temporary folder was still there at the kill).
"W": the Ray worker running a short trial is SIGKILLed instead (once, a seeded delay after the
trial starts, alongside the first run's kill point). "spent": the study's device_seconds_spent,
in which a killed run's unfinished trials are charged up to its last heartbeat (every 5 s).
Each row's invariants compare the study at the kill with the study after the run that followed
(the next kill, or the end), both read read-only: complete kept (every COMPLETE trial still
COMPLETE with the same values and device seconds); none left RUNNING (after the completed run,
and each trial the kill left RUNNING is FAIL, marked interrupted); spent never down; within
budget (spent <= budget + the longest trial); promoted once (COMPLETE full trials have distinct
sources and configurations); winners load (every winner folder in sight and every servable
trial's model loads and predicts{loader}, at the kill and after); dashboard (optuna-dashboard
lists the study and serves its trials, at the kill and after). "procs left at rerun": processes
of the killed run still alive when the rerun started. Settings: task {task}, budget {budget},
--workers 1, seed {seed}, {kills} driver kills.
"""


#: Where `--storage postgresql` finds its URL (what `scripts/postgres.sh start` exports).
POSTGRES_ENV = "ORCA_AUTOML_TEST_POSTGRES"


def postgres_url(arg: str, parser: argparse.ArgumentParser) -> str:
    """The PostgreSQL URL --storage names: the URL itself, or `postgresql` for $POSTGRES_ENV."""
    url = os.environ.get(POSTGRES_ENV, "") if arg == "postgresql" else arg
    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 -- any unparsable URL gets the same answer
        backend = ""
    if backend != "postgresql":
        parser.error("--storage: give sqlite, a postgresql+psycopg://user:pw@host:port/db URL, "
                     f"or postgresql with the URL in ${POSTGRES_ENV}")
    try:
        check_storage_url(url)
    except OrcaInputError as exc:
        parser.error(str(exc))
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="sqlite",
                        help="sqlite (a fresh file) or a PostgreSQL URL (a fresh study in it)")
    parser.add_argument("--task", default="italy_power_demand")
    parser.add_argument("--budget", default="3cpu-minutes", help="orca-search --budget")
    parser.add_argument("--kills", type=int, default=None,
                        help="driver kills: kills - 2 random, a FULL trial, a winner save "
                             "(default 10; 2 with --smoke)")
    parser.add_argument("--seed", type=int, default=0, help="orca-search --seed, and the kill points")
    parser.add_argument("--study", default=None, help="study name (default: faults-<time>)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--smoke", action="store_true",
                        help="the fake runner (trials sleep ~1 s), a tiny budget (for CI)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse this storage's logged rows for the same settings")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (runs' logs)")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    if args.kills is None:
        args.kills = 2 if args.smoke else 10
    if args.kills < 2:
        parser.error("--kills must be 2 or more (a FULL trial and a winner save are targeted)")
    if args.smoke:
        args.task, args.budget = "fake-1d", "12s"
    out_dir = Path(args.out) if args.out else OUT_DIR
    study = args.study or f"faults-{int(time.time())}"
    kind = "sqlite" if args.storage == "sqlite" else "postgresql"
    postgres = None if kind == "sqlite" else postgres_url(args.storage, parser)
    settings = {"task": args.task, "budget": args.budget, "kills": args.kills,
                "seed": args.seed, "smoke": args.smoke}

    def compute() -> dict[str, Any]:
        work = Path(tempfile.mkdtemp(prefix="orca-faults-"))
        url = postgres or f"sqlite:///{work / 'faults.db'}"
        search = ["--task", args.task, "--budget", args.budget, "--workers", "1", "--storage",
                  url, "--study", study, "--seed", str(args.seed),
                  "--no-report"]  # the kills are on the search; a report only adds seconds
        env = dict(os.environ)
        if args.smoke:
            command = [sys.executable, "-m", "tests.search.fake_cli", *search, "--search-space",
                       str(ROOT / "tests" / "search" / "spaces" / "tiny.yaml"),
                       "--validation", "holdout"]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
            check: WinnerCheck = fake_winner_check
        else:
            command = [str(BIN / "orca-search"), *search]
            check = model_winner_check(args.task, args.seed)
        launch = Launch(command, env, work, url, study, args.timeout)
        plan, worker_delay = kill_plan(args.kills, args.seed, 1.0 if args.smoke else 15.0)
        try:
            outcome, unreached = run_sequence(launch, plan, worker_delay, Observer(launch, check),
                                              kind)
        finally:
            if args.keep:
                say(f"work folder kept: {work} (study {study})")
            else:  # the study's files live in the work folder, so its database rows go too
                shutil.rmtree(work, ignore_errors=True)
                if postgres and read_state(postgres, study) is not None:
                    optuna.delete_study(study_name=study, storage=postgres)
        rows = kill_rows(outcome, unreached, kind)
        return {"rows": rows, "summary": summary_line(kind, rows, outcome, args.kills)}

    log_path = out_dir / "faults_runs.jsonl"
    RunLog(log_path, reuse=args.resume).run({**settings, "storage": kind}, compute)
    logged = RunLog(log_path)
    found = [entry for entry in (logged.get({**settings, "storage": s}) for s in STORAGES) if entry]
    rows = [{c: row.get(c, "-") for c in COLUMNS} for entry in found for row in entry["rows"]]
    notes = NOTES.format(task=args.task, budget=args.budget, seed=args.seed, kills=args.kills,
                         loader=" (smoke: the fake runner's meta.json / bag.json are whole)"
                         if args.smoke else " (orca_automl.cycle.load_model on 16 test inputs)")
    summaries = "\n".join(f"{entry['summary']} (code {entry['code']})" for entry in found)
    # the header quotes the command line: never a password given in --storage
    sys.argv = [redact_url(a) if "://" in a else a for a in sys.argv]
    write_report("faults", "Fault injection: orca-search SIGKILLed and rerun, invariants after each",
                 rows, notes=summaries + "\n\n" + notes, out_dir=out_dir)


if __name__ == "__main__":
    main()
