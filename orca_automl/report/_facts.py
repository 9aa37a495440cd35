"""What a report shows, read once from a study: its records, sessions, decisions and the
leaderboard, as typed values the figures and writers share (nothing here draws or writes)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError
from orca_automl.search import (
    StudyKey,
    TrialRecord,
    WinnerDecision,
    read_existing,
    redact_url,
    short_value,
    summarize,
)


@dataclass(frozen=True)
class SessionSpan:
    """One budget session: its budget text, and where it starts and ends on the report's
    device-time axis (device seconds of the study, summed over trials in finishing order)."""

    index: int
    budget: str
    start: float
    end: float


@dataclass(frozen=True)
class LeaderRow:
    """One line of the leaderboard: a promoted configuration, an ensemble or a baseline."""

    trial: int
    kind: str  # "full", "ensemble" or "baseline"
    state: str
    configuration: str
    val: float | None
    val_spread: float | None
    folds: int
    test: float | None
    cost: float | None
    device_seconds: float
    decision: str
    winner: bool
    model_dir: str | None


@dataclass(frozen=True)
class StudyFacts:
    """A study as the report sees it."""

    study_name: str
    storage: str  # passwords masked
    task: str
    metric: str
    validation: str
    budget_total: float
    spent: float
    records: tuple[TrialRecord, ...]
    finished_at: Mapping[int, dt.datetime]  # trial number -> when it finished
    sessions: tuple[SessionSpan, ...]
    decision: WinnerDecision | None
    pruning: Mapping[str, Any]
    leaderboard: tuple[LeaderRow, ...]
    frozen: tuple[FrozenTrial, ...] = field(repr=False)

    @property
    def winner(self) -> LeaderRow | None:
        return next((row for row in self.leaderboard if row.winner), None)

    def of_stage(self, *stages: Stage, state: TrialState | None = TrialState.COMPLETE
                 ) -> list[TrialRecord]:
        """Records of these stages (COMPLETE only unless `state` is None), by trial number."""
        return [r for r in self.records if r.plan.stage in stages
                and (state is None or r.state == state)]

    def in_finishing_order(self) -> list[TrialRecord]:
        """Finished trials in the order they finished (what the budget axis follows)."""
        done = [r for r in self.records if r.number in self.finished_at]
        return sorted(done, key=lambda r: (self.finished_at[r.number], r.number))


def read_study(storage: str, study_name: str) -> StudyFacts:
    """Read `study_name` from `storage` without changing it; `OrcaInputError` when the storage
    does not hold it or it was not made by orca-search."""
    existing = read_existing(storage)
    if study_name not in existing.names:
        held = ", ".join(repr(n) for n in existing.names) or "none"
        raise OrcaInputError(f"storage {redact_url(storage)} holds no study {study_name!r} "
                             f"(studies there: {held}): give --storage and --study of a search")
    if StudyKey.TASK_FINGERPRINT not in existing.attrs[study_name]:
        raise OrcaInputError(f"study {study_name!r} was not made by orca-search: only its "
                             "studies can be reported")
    rdb = RDBStorage(storage, skip_table_creation=True)
    try:
        study = optuna.load_study(study_name=study_name, storage=rdb)
        frozen = tuple(study.get_trials(deepcopy=False))
        attrs = dict(study.user_attrs)
    finally:
        rdb.engine.dispose()
    return facts_of(study_name, redact_url(storage), attrs, frozen)


def facts_of(study_name: str, storage: str, attrs: Mapping[str, Any],
             frozen: Sequence[FrozenTrial]) -> StudyFacts:
    """The facts of a study given its attributes and trials."""
    records = tuple(TrialRecord.from_frozen(t) for t in frozen)
    finished_at = {t.number: t.datetime_complete for t in frozen
                   if t.state.is_finished() and t.datetime_complete is not None}
    decision_attr = attrs.get(StudyKey.WINNER)
    decision = WinnerDecision.from_attr(decision_attr) if decision_attr else None
    metric = next((r.result.val.metric for r in records if r.result.val is not None), "score")
    budget = attrs.get(StudyKey.BUDGET) or {}
    facts = StudyFacts(
        study_name=study_name,
        storage=storage,
        task=str(attrs.get(StudyKey.TASK, "?")),
        metric=metric,
        validation=_validation_text(attrs.get(StudyKey.VALIDATION) or {}),
        budget_total=math.fsum(float(s.get("seconds", 0.0))
                               for s in attrs.get(StudyKey.SESSIONS) or [])
        or float(budget.get("seconds", 0.0)),
        spent=math.fsum(r.result.device_seconds for r in records if r.finished),
        records=records,
        finished_at=finished_at,
        sessions=(),
        decision=decision,
        pruning=dict(attrs.get(StudyKey.PRUNING_EVIDENCE) or {}),
        leaderboard=(),
        frozen=tuple(frozen),
    )
    return _with_derived(facts, attrs.get(StudyKey.SESSIONS) or [])


def _with_derived(facts: StudyFacts, sessions: Sequence[Mapping[str, Any]]) -> StudyFacts:
    spans = []
    used = 0.0
    order = facts.in_finishing_order()
    for index, session in enumerate(sessions):
        start = used
        used += math.fsum(r.result.device_seconds for r in order if r.plan.session == index)
        spans.append(SessionSpan(index, str(session.get("text", "?")), start, used))
    return StudyFacts(**{**facts.__dict__, "sessions": tuple(spans),
                         "leaderboard": leaderboard(facts)})


def _validation_text(attr: Mapping[str, Any]) -> str:
    if attr.get("kind") == "cv":
        return (f"{attr.get('folds')}-fold cross-validation (short trials: "
                f"{attr.get('short_folds')} folds), seed {attr.get('seed')}")
    return "hold-out validation split"


def leaderboard(facts: StudyFacts) -> tuple[LeaderRow, ...]:
    """Every promoted configuration (its full run, in any state), every ensemble and every
    baseline: the winner first, then by validation score (`TrialRecord.rank_key`)."""
    by_number = {r.number: r for r in facts.records}
    short_rank = {r.number: k for k, r in enumerate(
        sorted(facts.of_stage(Stage.SHORT), key=TrialRecord.rank_key), start=1)}
    winner = facts.decision.winner if facts.decision else None
    rows = []
    for r in facts.records:
        stage = r.plan.stage
        if stage not in (Stage.FULL, Stage.ENSEMBLE, Stage.BASELINE) or not r.finished:
            continue
        source = by_number.get(r.plan.promoted_from) if r.plan.promoted_from is not None else None
        rows.append(LeaderRow(
            trial=r.number,
            kind=stage.value,
            state=r.state.name,
            configuration=_configuration(r, source),
            val=r.val_score,
            val_spread=r.result.val_spread,
            folds=len(r.result.fold_vals),
            test=r.result.test.value if r.result.test is not None else None,
            cost=None if stage == Stage.BASELINE else r.cost,
            device_seconds=r.result.device_seconds,
            decision=_decision(r, source, short_rank, facts.decision),
            winner=r.number == winner,
            model_dir=r.result.model_dir,
        ))
    return tuple(sorted(rows, key=lambda row: (not row.winner, row.kind == "baseline",
                                               by_number[row.trial].rank_key())))


def _configuration(record: TrialRecord, source: TrialRecord | None) -> str:
    if record.plan.stage == Stage.BASELINE:
        from orca_automl.baselines import BASELINES

        name = record.plan.baseline or "?"
        return f"baseline: {BASELINES.info(name).display_name if name in BASELINES else name}"
    if record.plan.stage == Stage.ENSEMBLE:
        members = ", ".join(f"{m} ({w:.2g})" for m, w in zip(record.plan.members,
                                                            record.plan.weights, strict=True))
        return f"ensemble of trials {members}"
    text = summarize(source or record) or "engine default"
    return text + (" [engine default]" if record.plan.engine_default else "")


def _decision(record: TrialRecord, source: TrialRecord | None, short_rank: Mapping[int, int],
              decision: WinnerDecision | None) -> str:
    """Why the row is on the board, and where the winner rule put it."""
    stage = record.plan.stage
    if stage == Stage.BASELINE and not record.servable:
        return "reference method, scored on the same folds; not served"
    if record.state != TrialState.COMPLETE:
        reason = record.result.error or (record.result.pruned.message if record.result.pruned
                                         else "")
        return f"{record.state.name.lower()}: {reason}".strip(": ")
    parts = []
    if stage == Stage.ENSEMBLE:
        parts.append("greedy ensemble of the full runs' validation predictions")
    elif stage == Stage.BASELINE:
        parts.append("reference method, scored on the same folds; saved to compete")
    elif source is not None:
        rank = short_rank.get(source.number)
        score = short_value(source.val_score)
        parts.append(f"promoted from short trial {source.number} (rank {rank}, val {score})"
                     if rank else f"promoted from short trial {source.number}")
    if decision is not None:
        verdict = decision.reason(record.number)
        if verdict != "-":
            parts.append(verdict)
    return "; ".join(parts) or "-"


def spread_text(row: LeaderRow) -> str:
    """The validation score with its spread over folds, e.g. "0.9563 ± 0.012 (5 folds)"."""
    if row.val is None:
        return "-"
    if row.val_spread is None:
        return f"{row.val:.4f}"
    return f"{row.val:.4f} ± {row.val_spread:.2g} ({row.folds} folds)"

