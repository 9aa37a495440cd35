"""How a running search reports what happens, to whoever watches it (the console, a notebook,
a test): a no-op base to subclass, shaped like `CycleCallback`, and the events it receives.

The search core never prints; `orca_automl.cli` turns these events into the progress display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from orca_automl.config import Stage
from orca_automl.search._budget import Budget
from orca_automl.search._promotion import Promotion
from orca_automl.search._records import TrialRecord
from orca_automl.search._space import SearchSpace
from orca_automl.search._validation import Validation

if TYPE_CHECKING:
    from orca_automl.search._search import SearchResult


@dataclass(frozen=True)
class SearchStart:
    """The search's input, validated in full; nothing has been written yet."""

    task: Any
    study_name: str
    storage: str
    space: SearchSpace
    budget: Budget
    workers: int
    validation: Validation
    space_recorded: bool = False  # the study's own copy of a packaged space that changed since


@dataclass(frozen=True)
class Resumed:
    """An existing study continues: `interrupted` trials a killed run left RUNNING were marked
    FAIL now, `retries` interrupted short trials (of a killed run or one stopped by Ctrl-C)
    are retried first (a full one only by promotion again, while the budget allows), and
    `spent` device-seconds of this budget were already used."""

    interrupted: int
    spent: float
    retries: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Where the search stands (counts cover the whole study)."""

    used: float
    total: float
    complete: int
    pruned: int
    failed: int
    running: int
    best: TrialRecord | None
    phase: str

    @property
    def left(self) -> float:
        """Device-seconds of the budget not yet spent or committed to running trials."""
        return max(0.0, self.total - self.used)

    @classmethod
    def of(cls, records: Sequence[TrialRecord], used: float, total: float, running: int,
           phase: str) -> Snapshot:
        finished = [r for r in records if r.finished]
        scored = [r for r in finished if r.state == TrialState.COMPLETE and r.val_score is not None
                  and r.plan.stage != Stage.BASELINE]  # a reference is not what the search found
        return cls(
            used=used,
            total=total,
            complete=sum(r.state == TrialState.COMPLETE for r in finished),
            pruned=sum(r.state == TrialState.PRUNED for r in finished),
            failed=sum(r.state == TrialState.FAIL for r in finished),
            running=running,
            best=min(scored, key=TrialRecord.rank_key, default=None),
            phase=phase,
        )


class SearchCallback:
    """No-op base: subclass and override what you need."""

    def on_start(self, start: SearchStart) -> None:
        """The input is valid; the executor (Ray) is about to start."""

    def on_resume(self, resumed: Resumed) -> None:
        """The study existed and this run continues it."""

    def on_progress(self, snapshot: Snapshot) -> None:
        """The counters changed (called often: after every wait for trials)."""

    def on_trial_end(self, record: TrialRecord) -> None:
        """A trial finished and is recorded in the study."""

    def on_promotion_skipped(self, promotion: Promotion, remaining: float) -> None:
        """A configuration chosen for full training did not fit in the `remaining` budget."""

    def on_interrupt(self) -> None:
        """Ctrl-C stopped the search: its running trials are being marked interrupted and the
        executor stopped; `SearchInterrupted` follows (`on_end` is not called)."""

    def on_end(self, result: SearchResult) -> None:
        """The budget session is over and recorded."""
