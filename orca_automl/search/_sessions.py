"""Budget sessions: each run of orca-search spends one budget, recorded on the study.

A fresh run opens a session; a rerun after a kill continues the unfinished one, with what it
already spent deducted (recomputed from the trials, so nothing is counted twice).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from orca_automl.search._budget import Budget
from orca_automl.search._records import StudyKey, TrialRecord
from orca_automl.search._storage import StudyHandle


@dataclass(frozen=True)
class Session:
    """One budget: a fresh run of the command opens a session; a rerun after a kill
    continues the unfinished one, with what it already spent deducted."""

    index: int
    budget: Budget
    spent: float
    resumed: bool


def begin_session(handle: StudyHandle, budget: Budget) -> Session:
    """Open a new session for `budget`, or continue the last one if a killed run left it open."""
    sessions = list(handle.attrs.get(StudyKey.SESSIONS) or [])
    resumed = bool(sessions) and not sessions[-1].get("finished", False)
    entry = {**budget.to_attr(), "started": time.time(), "finished": False}
    if resumed:
        entry["started"] = sessions[-1].get("started", entry["started"])
        sessions[-1] = entry
    else:
        sessions.append(entry)
    index = len(sessions) - 1
    handle.set_attr(StudyKey.SESSIONS, sessions)
    handle.set_attr(StudyKey.BUDGET, budget.to_attr())
    spent = session_spent(handle.records(), index)
    return Session(index, budget, spent, resumed)


def end_session(handle: StudyHandle, session: Session) -> None:
    """Close the session, recording what it spent."""
    sessions = list(handle.attrs.get(StudyKey.SESSIONS) or [])
    sessions[session.index] = {**sessions[session.index], "finished": True,
                               "spent": session_spent(handle.records(), session.index)}
    handle.set_attr(StudyKey.SESSIONS, sessions)


def session_spent(records: list[TrialRecord], index: int) -> float:
    return math.fsum(r.result.device_seconds for r in records
                     if r.plan.session == index and r.finished)


def total_spent(records: list[TrialRecord]) -> float:
    return math.fsum(r.result.device_seconds for r in records if r.finished)
