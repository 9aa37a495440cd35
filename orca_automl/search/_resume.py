"""Resuming a study: refuse what must not be resumed, and repair what a killed run left.

A study is resumed only by the same task data, search space and validation protocol (and by one
driver at a time: `_driver_lock`); each driver records a heartbeat on the study, which names it
to a refused second driver and dates a killed driver's last sign of life.
Optuna's heartbeat does not cover ask/tell, so trials a killed run left RUNNING are marked FAIL
here, charged the device time they had used up to the killed driver's last heartbeat, and the
short ones are queued for a retry. A driver stopped by Ctrl-C does the same at once for its own
running trials (`settle_interrupt`), so the study it leaves is as consistent as a finished one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError
from orca_automl.search._executor import RunKey
from orca_automl.search._records import RunLog, StudyKey, TrialRecord, TrialResult
from orca_automl.search._sessions import total_spent
from orca_automl.search._space import SearchSpace
from orca_automl.search._space_file import is_packaged, parse_space
from orca_automl.search._storage import DIRECTIONS, ExistingStudies, StudyHandle


def check_resumable(
    existing: ExistingStudies, study_name: str, fingerprint: str, space_sha256: str,
    space_path: Path, validation: Mapping[str, Any] | None = None,
) -> None:
    """Refuse to resume a study made for other data, another space or validation protocol,
    or by another tool."""
    if study_name not in existing.names:
        return
    attrs = existing.attrs[study_name]
    hint = "use --new-study to start a new study next to it, or another --study NAME"
    if existing.directions[study_name] != DIRECTIONS or StudyKey.TASK_FINGERPRINT not in attrs:
        raise OrcaInputError(f"study {study_name!r} was not made by orca-search: {hint}")
    if attrs[StudyKey.TASK_FINGERPRINT] != fingerprint:
        raise OrcaInputError(
            f"study {study_name!r} was made for different task data (fingerprint "
            f"{str(attrs[StudyKey.TASK_FINGERPRINT])[:12]}, now {fingerprint[:12]}): {hint}"
        )
    old_space = attrs.get(StudyKey.SEARCH_SPACE) or {}
    if old_space.get("sha256") != space_sha256:
        raise OrcaInputError(
            f"study {study_name!r} was made with another search space ({old_space.get('path')}, "
            f"sha256 {str(old_space.get('sha256'))[:12]}; now {space_path}, {space_sha256[:12]}): {hint}"
        )
    old_validation = attrs.get(StudyKey.VALIDATION) or HOLDOUT
    if validation is not None and dict(old_validation) != dict(validation):
        raise OrcaInputError(
            f"study {study_name!r} was scored with validation {_protocol(old_validation)}, not "
            f"{_protocol(validation)}: scores would not compare; give that --validation, or {hint}"
        )


def recorded_space(
    existing: ExistingStudies, study_name: str, space: SearchSpace,
    known_names: Mapping[str, Collection[str]],
) -> SearchSpace | None:
    """The space `study_name` was made with, where it replaces `space` on resume: `space` is a
    packaged one (search_spaces/NAME.yaml inside the package, which an upgrade may change)
    under the same name, it changed since, and the study recorded its content. A user's own
    file that changed is not replaced: `check_resumable` refuses it, as before."""
    if study_name not in existing.names or not is_packaged(space.path):
        return None
    old = existing.attrs[study_name].get(StudyKey.SEARCH_SPACE) or {}
    if old.get("sha256") == space.sha256 or old.get("name") != space.name or not old.get("content"):
        return None
    try:
        restored = parse_space(json.loads(old["content"]), name=space.name,
                               path=Path(str(old.get("path"))), known_names=known_names)
    except OrcaInputError as exc:
        raise OrcaInputError(
            f"study {study_name!r} was made with an earlier {space.name} search space that no "
            f"longer loads ({exc}): use --new-study to start a new study with today's"
        ) from None
    return restored if restored.sha256 == old["sha256"] else None


#: What studies made before validation protocols were recorded used.
HOLDOUT = {"kind": "holdout", "folds": 0, "short_folds": 0, "seed": 0}


def _protocol(attr: Mapping[str, Any]) -> str:
    if attr.get("kind") != "cv":
        return "holdout"
    return f"cv:{attr.get('folds')}/{attr.get('short_folds')} (seed {attr.get('seed')})"


def fresh_study_name(existing: ExistingStudies, name: str) -> str:
    """`name`, or `name-2`, `name-3`, ... : the first one the storage does not hold."""
    if name not in existing.names:
        return name
    k = 2
    while f"{name}-{k}" in existing.names:
        k += 1
    return f"{name}-{k}"


def beat(handle: StudyHandle, started: float) -> None:
    """Record that this driver is alive (read by resumes and by other drivers)."""
    _set_driver(handle, started=started, finished=False)


def release(handle: StudyHandle) -> None:
    """Mark this driver as finished, so the next run needs no liveness check."""
    _set_driver(handle, started=(handle.attrs.get(StudyKey.DRIVER) or {}).get("started"),
                finished=True)


def _set_driver(handle: StudyHandle, started: float | None, finished: bool) -> None:
    handle.set_attr(StudyKey.DRIVER, {"host": socket.gethostname(), "pid": os.getpid(),
                                      "started": started, "heartbeat": time.time(),
                                      "finished": finished})


def last_heartbeat(existing: ExistingStudies, study_name: str) -> float | None:
    """When the previous driver of `study_name` last recorded that it was alive."""
    driver: Any = existing.attrs.get(study_name, {}).get(StudyKey.DRIVER) or {}
    return driver.get("heartbeat")


def reconcile_interrupted(
    handle: StudyHandle, last_heartbeat: float | None,
    in_flight: Mapping[RunKey, float] | None = None,
) -> list[TrialRecord]:
    """Mark trials a stopped run left RUNNING as FAIL; returns them (to be retried).

    Each is charged the device time it had used: its finished runs' charges, and for each
    unfinished run what `in_flight` says it used (the executor's own count, known to a driver
    stopped by Ctrl-C) or else its time until the stopped driver's last heartbeat, the best
    evidence a killed run leaves of how long it ran.
    """
    failed = []
    for record in handle.records():
        if record.state != TrialState.RUNNING:
            continue
        handle.finish(handle.trial(record.number), TrialResult(
            device_seconds=_used_until(record, last_heartbeat, in_flight or {}),
            runs=record.result.runs,
            device_seconds_estimated=True,
            interrupted=True,
            error="interrupted: the orca-search run driving this trial stopped before it "
                  "finished; a later run retries it as a new trial",
        ))
        failed.append(record)
    return failed


def settle_interrupt(handle: StudyHandle, in_flight: Mapping[RunKey, float]) -> list[TrialRecord]:
    """After Ctrl-C, before Ray stops: mark this driver's running trials interrupted (charged
    what they used up to now), record the study's spent device time, and mark the driver
    finished. The budget session stays open, so the same command continues it."""
    interrupted = reconcile_interrupted(handle, time.time(), in_flight)
    handle.set_attr(StudyKey.DEVICE_SECONDS_SPENT, total_spent(handle.records()))
    release(handle)
    return interrupted


def _used_until(record: TrialRecord, heartbeat: float | None,
                in_flight: Mapping[RunKey, float]) -> float:
    """Device time a trial had used when its driver stopped: its finished runs' charges, plus
    each unfinished run's use by `in_flight`, or its time since it started until `heartbeat`
    (the trial's time since it started when no run was logged)."""
    runs = record.result.runs or (RunLog(None, record.started.timestamp()
                                         if record.started else time.time()),)
    seconds = 0.0
    for run in runs:
        if run.device_seconds is not None:
            seconds += run.device_seconds
        elif (record.number, run.fold) in in_flight:
            seconds += in_flight[(record.number, run.fold)]
        else:
            until = heartbeat if heartbeat is not None else run.started
            seconds += max(0.0, until - run.started) * record.plan.device_share
    return seconds


def pending_retries(records: list[TrialRecord]) -> list[TrialRecord]:
    """Interrupted short trials that no later trial has retried yet, oldest first."""
    retried = {r.plan.retry_of for r in records if r.plan.retry_of is not None}
    return [
        r for r in sorted(records, key=lambda r: r.number)
        if r.result.interrupted and r.plan.stage == Stage.SHORT and r.number not in retried
    ]
