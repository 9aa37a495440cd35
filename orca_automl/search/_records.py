"""What a study holds: its study-level keys, and one typed record per trial.

The database is the truth: pruning, promotion, the ledger and the winners table are computed
from these records, never from in-memory counters, so a resumed run sees exactly what a killed
one recorded. A trial is declared once, in two parts: its `TrialPlan` (written when the driver
starts it) and its `TrialResult` (written when it ends). Every field is one Optuna user
attribute of the same name; `to_attrs` and `from_attrs` derive that mapping from the fields'
types, so a new field is one line here and nothing else.
"""

# No `from __future__ import annotations`: the codec reads the fields' types as live objects.

import dataclasses
import datetime as dt
import math
import statistics
import types
import typing
from enum import Enum, StrEnum
from typing import Any, TypeVar

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from orca_automl.config import OrcaConfig, Stage
from orca_automl.evaluation import Evaluation


class StudyKey(StrEnum):
    """Study-level user attributes."""

    TASK = "task"
    TASK_FINGERPRINT = "task_fingerprint"  # a resume on other data is refused
    SEARCH_SPACE = "search_space"  # {name, path, sha256, content}: another space is refused
    VALIDATION = "validation"  # {kind, folds, short_folds, seed}: a resume must use the same
    WINNERS_FOLDER = "winners_folder"
    BUDGET = "budget"  # {text, seconds, kind} of the current session
    SESSIONS = "sessions"  # one entry per budget session (see `_sessions`)
    DRIVER = "driver"  # {host, pid, started, heartbeat, finished} of the driving process
    DEVICE_SECONDS_SPENT = "device_seconds_spent"
    PRUNING_EVIDENCE = "pruning_evidence"
    ENGINE_DEFAULT_TRIAL = "engine_default_trial"  # number of the trial of OrcaConfig()'s values
    WINNER = "winner"  # the winner rule, its confidence and the evidence of each comparison
    WINNER_WITHOUT_BASELINES = "winner_without_baselines"  # the rule without baselines competing


class PruneKind(StrEnum):
    """Which rule stopped a trial."""

    ALIGNMENT = "alignment"  # its final alignment loss, before refine
    MEDIAN = "median"  # median stopping on validation scores, during refine
    FOLDS = "folds"  # its first folds lose to the best trial's, sample by sample


@dataclasses.dataclass(frozen=True)
class PruneReason:
    kind: PruneKind
    message: str


@dataclasses.dataclass(frozen=True)
class WorkerNode:
    """Where a run ran, as its Ray worker saw it: the machine's host name, the Ray node's IP
    address and its Ray node id (two nodes on one machine differ only in the id)."""

    host: str
    ip: str
    ray_node: str


@dataclasses.dataclass(frozen=True)
class RunLog:
    """One run of a trial (a fold, its refit run, or its hold-out run; `fold` is its slot,
    see `TrialRequest.slot`): when it started (epoch seconds) and, once finished, the device
    time it was charged and the node it ran on. Written as runs start and end, so the time of
    a trial that a killed driver left RUNNING can be charged run by run."""

    fold: int | None
    started: float
    device_seconds: float | None = None
    node: WorkerNode | None = None


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """What the driver decided when it started the trial.

    engine_default marks the engine's default configuration (and its retries and full runs),
    which wins exact validation ties (`TrialRecord.rank_key`). config is None only for a trial
    whose sampled values the configuration refused, or one killed while they were sampled.
    folds: the cross-validation folds it runs, one run each (empty: one hold-out run).
    refit: a cross-validated full trial that also refits its configuration on all
    development data and serves that one model instead of the bag of its fold models.
    baseline: the registered reference method a BASELINE-stage trial scored.
    members, weights: the trials an ENSEMBLE-stage trial averages, and their weights.
    """

    stage: Stage = Stage.SHORT
    session: int = 0
    device_share: float = 1.0
    config: OrcaConfig | None = None
    engine_default: bool = False
    retry_of: int | None = None
    promoted_from: int | None = None
    folds: tuple[int, ...] = ()
    refit: bool = False
    baseline: str | None = None
    members: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """What one run of a trial measured, as the driver records it when the trial ends.

    device_seconds is what the budget was charged, summed over its runs (estimated from the
    last heartbeat for a trial of a killed run); val is the validation evaluation, the mean
    over `fold_vals` under cross-validation; val_curve holds (refine step, validation score)
    pairs; predictions_artifact names the Optuna artifact with its validation (out-of-fold)
    predictions; test is set for full-schedule winners only, the one place the search touches
    test data (a bag's: of its folds' averaged predictions; a refit trial's: of its refit
    model, with its bag's in bag_test, a measurement). node is where the run ran, filled in by
    its Ray worker (None when no worker reported back, e.g. its node died); a trial of several
    runs keeps its first run's here and each run's in `runs`. step_seconds is the part of
    device_seconds its runs spent in align and refine steps (0 when the runner does not
    report it), which a full-schedule estimate scales by the step counts.
    """

    device_seconds: float = 0.0
    wall_seconds: float = 0.0
    step_seconds: float = 0.0
    device_seconds_estimated: bool = False
    val: Evaluation | None = None
    fold_vals: tuple[Evaluation, ...] = ()
    runs: tuple[RunLog, ...] = ()
    predictions_artifact: str | None = None
    cost: float | None = None
    align_curve: tuple[float, ...] = ()
    final_align_loss: float | None = None
    val_curve: tuple[tuple[int, float], ...] = ()
    notes: tuple[str, ...] = ()
    pruned: PruneReason | None = None
    error: str | None = None
    traceback: str | None = None
    interrupted: bool = False
    test: Evaluation | None = None
    bag_test: Evaluation | None = None
    model_dir: str | None = None
    node: WorkerNode | None = None

    @property
    def state(self) -> TrialState:
        """How Optuna is told: FAIL with an error, PRUNED with a prune reason, else COMPLETE."""
        if self.error is not None:
            return TrialState.FAIL
        if self.pruned is not None:
            return TrialState.PRUNED
        return TrialState.COMPLETE

    @property
    def val_spread(self) -> float | None:
        """Standard deviation of the folds' validation scores (None without folds)."""
        if len(self.fold_vals) < 2:
            return None
        return statistics.stdev(v.score for v in self.fold_vals)

    @property
    def objectives(self) -> list[float]:
        """(validation score, inference cost): the study's two objectives."""
        assert self.val is not None and self.cost is not None
        return [self.val.score, self.cost]


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial as the search logic sees it: Optuna's own fields, its plan and its result."""

    number: int
    state: TrialState
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    values: tuple[float, ...] | None
    started: dt.datetime | None
    plan: TrialPlan
    result: TrialResult

    @classmethod
    def from_frozen(cls, trial: FrozenTrial) -> "TrialRecord":
        return cls(
            number=trial.number,
            state=trial.state,
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            values=tuple(trial.values) if trial.state == TrialState.COMPLETE else None,
            started=trial.datetime_start,
            plan=from_attrs(TrialPlan, trial.user_attrs),
            result=from_attrs(TrialResult, trial.user_attrs),
        )

    @property
    def finished(self) -> bool:
        return self.state.is_finished()

    @property
    def servable(self) -> bool:
        """A COMPLETE full run, ensemble or baseline with a saved model folder `orca-predict`
        serves (a baseline has one when baselines compete)."""
        return (self.state == TrialState.COMPLETE
                and self.plan.stage in (Stage.FULL, Stage.ENSEMBLE, Stage.BASELINE)
                and bool(self.result.model_dir))

    @property
    def val_score(self) -> float | None:
        """The first objective (COMPLETE trials only)."""
        return self.values[0] if self.values else None

    @property
    def cost(self) -> float | None:
        """The second objective, GFLOPs per sample (COMPLETE trials only)."""
        return self.values[1] if self.values and len(self.values) > 1 else None

    @property
    def val_loss(self) -> float:
        """Validation loss (inf when unknown): the tie-breaker of equal validation scores,
        which are common on small validation sets (accuracy moves in steps of 1/n)."""
        val = self.result.val
        return val.loss if val is not None and math.isfinite(val.loss) else math.inf

    def rank_key(self) -> tuple[float, bool, float, float, int]:
        """Sort key, best first: higher validation score; on equal scores the engine's default
        configuration, then lower validation loss, lower inference cost, earlier trial.

        An exact tie is no evidence against the default, the configuration the search started
        from and the one `orca-train` runs (see docs/benchmarks/findings.md).
        """
        score = self.val_score if self.val_score is not None else -math.inf
        cost = self.cost if self.cost is not None else math.inf
        return (-score, not self.plan.engine_default, self.val_loss, cost, self.number)


def summarize(record: TrialRecord) -> str:
    """The searched parameters in one short string: backbone/embedder/metric, then the rest."""
    values = {k.split("[")[0]: v for k, v in record.params.items()}
    head = "/".join(str(values.pop(k)) for k in ("model.backbone", "model.embedder", "align.metric")
                    if k in values)
    rest = " ".join(f"{k.split('.')[-1]}={short_value(v)}" for k, v in sorted(values.items()))
    return f"{head} {rest}".strip()


def short_value(value: object) -> str:
    """A value in at most four significant digits; None as "-"."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


# ------------------------------------------------------------------------------------ codec
Part = TypeVar("Part", TrialPlan, TrialResult)


def to_attrs(part: TrialPlan | TrialResult, *names: str) -> dict[str, Any]:
    """Optuna user attributes of `part`: one per field (only `names`, when given), None skipped.

    Values are plain JSON: enums as their value, dataclasses as mappings, NaN and infinities
    as None (the dashboard parses attributes as strict JSON).
    """
    chosen = names or tuple(f.name for f in dataclasses.fields(part))
    attrs = {}
    for name in chosen:
        value = getattr(part, name)
        if value is not None:
            attrs[name] = json_safe(value)
    return attrs


def from_attrs(cls: type[Part], attrs: typing.Mapping[str, Any]) -> Part:
    """The `cls` part of a trial read back from its user attributes (missing fields: defaults)."""
    return cls(**{f.name: _decode(f.type, attrs[f.name])
                  for f in dataclasses.fields(cls) if f.name in attrs})


def json_safe(value: Any) -> Any:
    """`value` as plain JSON types, NaN and infinities as None."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, OrcaConfig):
        return json_safe(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _decode(kind: Any, value: Any) -> Any:
    """`value` (plain JSON) as an instance of the field type `kind`."""
    if isinstance(kind, str):
        raise TypeError(f"field type {kind!r} is a string: declare record parts without "
                        "`from __future__ import annotations`")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):  # X | None
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if kind is OrcaConfig:
        return OrcaConfig.from_dict(value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return kind(**{f.name: _decode(f.type, value[f.name])
                       for f in dataclasses.fields(kind) if f.name in value})
    if kind is float:
        return math.nan if value is None else float(value)
    if kind in (int, bool, str):
        return kind(value)
    return value
