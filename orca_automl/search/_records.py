"""The search's view of one Optuna trial, read back from the study's user attributes.

The database is the truth: pruning, promotion, the ledger and the winners table are all
computed from these records, never from in-memory counters, so a resumed run sees exactly
what the killed one recorded. The user-attribute names a trial carries are listed here once.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

#: Per-trial user attributes (Optuna stores them as JSON).
STAGE = "stage"                        # "short" or "full"
SESSION = "session"                    # which budget session ran it (see _storage)
CONFIG = "config"                      # the full OrcaConfig as a dict
DEVICE_SHARE = "device_share"          # devices the trial held (GPU fraction, or 1 worker)
DEVICE_SECONDS = "device_seconds"      # what the budget was charged
DEVICE_SECONDS_ESTIMATED = "device_seconds_estimated"  # True for trials of a killed run
ALIGN_CURVE = "align_curve"
FINAL_ALIGN_LOSS = "final_align_loss"
VAL_CURVE = "val_curve"                # [[refine step, validation score], ...]
VAL_METRIC = "val_metric"
METRIC_NAME = "metric_name"
VAL_LOSS = "val_loss"
PROMOTED_FROM = "promoted_from"        # full trial: number of its short trial
RETRY_OF = "retry_of"                  # number of the interrupted trial it repeats
INTERRUPTED = "interrupted"            # FAIL because the run driving it was killed
PRUNED_REASON = "pruned_reason"
ERROR = "error"
NOTES = "notes"
TEST = "test"                          # {"metric", "value", "score"}: winners only
TEST_SCORE = "test_score"
MODEL_DIR = "model_dir"
TRACEBACK = "traceback"
WALL_SECONDS = "wall_seconds"
ENGINE_DEFAULT = "engine_default"      # True: the engine's default configuration (or its retry
                                       # or full run), which wins exact ties (see `rank_key`)

#: Study user attribute: number of the trial enqueued with the engine's defaults.
ENGINE_DEFAULT_TRIAL = "engine_default_trial"


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the search logic sees it."""

    number: int
    state: TrialState
    stage: str
    session: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    config: dict[str, Any]
    val_score: float | None = None
    cost: float | None = None
    final_align_loss: float | None = None
    val_curve: tuple[tuple[int, float], ...] = ()
    device_seconds: float = 0.0
    device_share: float = 1.0
    promoted_from: int | None = None
    retry_of: int | None = None
    interrupted: bool = False
    pruned_reason: str | None = None
    error: str | None = None
    test_score: float | None = None
    model_dir: str | None = None
    started: dt.datetime | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state.is_finished()

    @property
    def val_loss(self) -> float:
        """Validation loss (inf when unknown): the tie-breaker of equal validation scores,
        which are common on small validation sets (accuracy moves in steps of 1/n)."""
        value = self.attrs.get(VAL_LOSS)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.inf

    @property
    def engine_default(self) -> bool:
        return bool(self.attrs.get(ENGINE_DEFAULT, False))

    def rank_key(self) -> tuple[float, bool, float, float, int]:
        """Sort key, best first: higher validation score; on equal scores the engine's default
        configuration, then lower validation loss, lower inference cost, earlier trial.

        Equal scores are common on small validation sets (accuracy moves in steps of 1/n), and
        an exact tie is no evidence against the default, the configuration the search started
        from and the one `orca-train` runs: on 10 validation series, the configurations tied
        with it on validation and chosen on validation loss scored lower on test (GunPoint).
        """
        score = self.val_score if self.val_score is not None else -math.inf
        cost = self.cost if self.cost is not None else math.inf
        return (-score, not self.engine_default, self.val_loss, cost, self.number)

    @classmethod
    def from_frozen(cls, trial: FrozenTrial) -> TrialRecord:
        a = trial.user_attrs
        values = trial.values if trial.state == TrialState.COMPLETE else None
        return cls(
            number=trial.number,
            state=trial.state,
            stage=str(a.get(STAGE, "short")),
            session=int(a.get(SESSION, 0)),
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            config=dict(a.get(CONFIG) or {}),
            val_score=values[0] if values else None,
            cost=values[1] if values and len(values) > 1 else None,
            final_align_loss=a.get(FINAL_ALIGN_LOSS),
            val_curve=tuple((int(s), float(v)) for s, v in a.get(VAL_CURVE) or ()),
            device_seconds=float(a.get(DEVICE_SECONDS, 0.0)),
            device_share=float(a.get(DEVICE_SHARE, 1.0)),
            promoted_from=a.get(PROMOTED_FROM),
            retry_of=a.get(RETRY_OF),
            interrupted=bool(a.get(INTERRUPTED, False)),
            pruned_reason=a.get(PRUNED_REASON),
            error=a.get(ERROR),
            test_score=a.get(TEST_SCORE),
            model_dir=a.get(MODEL_DIR),
            started=trial.datetime_start,
            attrs=dict(a),
        )
