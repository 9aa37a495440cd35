"""Which saved model the search hands the user: the incumbent stays the winner unless a
challenger (another fully trained configuration, an ensemble, or a baseline) beats it beyond
the noise of the validation samples.

On small data the best of many noisy validation scores is a winner's curse: a challenger
that scores higher than the incumbent on 10 samples usually is not better. So the search
starts from what the user would run without orca-automl. When baselines compete that is the
best validated one (the field's classical method, or 1-NN where it validates higher), and the
full run of the engine's default configuration (what `orca-train` does) takes its place only
by beating it beyond noise; without competing baselines the default is the incumbent. Beyond
noise: the advantage survives a paired bootstrap over the validation samples both were
predicted on (out-of-fold predictions under cross-validation, the hold-out split otherwise),
the lower end of a one-sided confidence interval of the score difference above zero. The
evidence of every comparison is stored on the study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orca_automl.config import Stage
from orca_automl.search._records import TrialRecord
from orca_automl.search._storage import StoredPredictions, on_rows, shared_validation_rows

RULE_TEXT = (
    "the incumbent, the best validated competing reference baseline (the field's own method), "
    "replaced by the engine's default configuration (its full run) when that beats it beyond "
    "noise or when no baseline competes, stays the winner unless a challenger (another full "
    "run, an ensemble, or a baseline) beats its validation score beyond noise: a paired "
    "bootstrap over the samples both were predicted on, whose one-sided lower confidence bound "
    "of the score difference is above 0"
)


@dataclass(frozen=True)
class Comparison:
    """A challenger's full run against the incumbent's, on the samples both predicted."""

    trial: int
    incumbent: int
    samples: int
    difference: float
    lower_bound: float

    @property
    def beats(self) -> bool:
        return self.lower_bound > 0


@dataclass(frozen=True)
class WinnerDecision:
    """The winning full run, the incumbent it was measured against, and the evidence."""

    winner: int | None
    incumbent: int | None
    confidence: float
    comparisons: tuple[Comparison, ...]
    default: int | None = None  # the engine default's full run

    def reason(self, trial: int) -> str:
        """Why a full run stands where it does, in a few words for tables."""
        won = " (winner)" if trial == self.winner else ""
        found = next((c for c in self.comparisons if c.trial == trial), None)
        if trial == self.incumbent:
            if self.incumbent != self.default and self.default is not None:
                return f"incumbent: the field's method (the best validated baseline){won}"
            if found is None:
                return f"incumbent: the engine default{won}"
            return (f"incumbent: the engine default, which beats the field's method: "
                    f"{self._evidence(found)}{won}")
        if found is None:
            return "best validation score" if trial == self.winner else "-"
        beaten = "the default" if found.incumbent == self.default else "the incumbent"
        verdict = f"beats {beaten}" if found.beats else "not beyond noise"
        return f"{verdict}: {self._evidence(found)}{won}"

    def _evidence(self, found: Comparison) -> str:
        return (f"{found.difference:+.3f}, {self.confidence:.0%} lower bound "
                f"{found.lower_bound:+.3f} on {found.samples} samples")

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any]) -> WinnerDecision:
        """The decision as `to_attr` recorded it on the study."""
        return cls(attr.get("winner"), attr.get("incumbent"), float(attr.get("confidence", 0.9)),
                   tuple(Comparison(c["trial"], c["incumbent"], c["samples"], c["difference"],
                                    c["lower_bound"]) for c in attr.get("comparisons", ())),
                   attr.get("default", attr.get("incumbent")))

    def to_attr(self) -> dict[str, Any]:
        return {
            "rule": RULE_TEXT,
            "confidence": self.confidence,
            "winner": self.winner,
            "incumbent": self.incumbent,
            "default": self.default,
            "comparisons": [
                {"trial": c.trial, "incumbent": c.incumbent, "samples": c.samples,
                 "difference": c.difference, "lower_bound": c.lower_bound, "beats": c.beats}
                for c in self.comparisons
            ],
        }


def paired_bootstrap(
    score: Callable[[np.ndarray], float], n: int, confidence: float, rounds: int, seed: int
) -> tuple[float, float]:
    """(observed difference, one-sided lower confidence bound) of a paired score difference.

    score(rows) returns challenger minus incumbent score on those sample rows; the rows are
    resampled with replacement `rounds` times, so any metric works, decomposable or not.
    """
    observed = score(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = np.array([score(rng.integers(0, n, n)) for _ in range(rounds)])
    return observed, float(np.quantile(draws, 1.0 - confidence))


def decide_winner(
    records: Sequence[TrialRecord],
    predictions: Callable[[TrialRecord], StoredPredictions | None],
    task: Any,
    confidence: float = 0.9,
    rounds: int = 1000,
    seed: int = 0,
    eligible: Callable[[TrialRecord], bool] | None = None,
) -> WinnerDecision | None:
    """The winner among the study's servable records (None when there is none yet): COMPLETE
    full runs, ensembles, and baselines saved to compete, or only those `eligible` accepts
    (e.g. no baseline: a measurement of what the search's own models would have handed the
    user).

    Without a full run of the engine's default the best validation score wins (ties as in
    `TrialRecord.rank_key`), as without predictions to compare.
    """
    full = sorted((r for r in records if r.servable and (eligible is None or eligible(r))),
                  key=TrialRecord.rank_key)
    if not full:
        return None
    default = next((r for r in full if r.plan.engine_default and r.plan.stage == Stage.FULL),
                   None)
    if default is None:
        return WinnerDecision(full[0].number, None, confidence, ())
    loaded: dict[int, StoredPredictions | None] = {}

    def stored(record: TrialRecord) -> StoredPredictions | None:
        """`predictions`, read from the artifact store once per trial."""
        if record.number not in loaded:
            loaded[record.number] = predictions(record)
        return loaded[record.number]

    first = _incumbent(default, full)
    incumbent, comparisons = first, []
    duel = None if first is default else _comparison(default, first, stored, task,
                                                    confidence, rounds, seed)
    if duel is not None:
        comparisons.append(duel)
        if duel.beats:  # the default earned its place; the search's own finds must beat it
            incumbent = default
    for challenger in full:
        if challenger is incumbent or (duel is not None and challenger is default):
            continue
        found = _comparison(challenger, incumbent, stored, task, confidence, rounds, seed)
        if found is not None:
            comparisons.append(found)
    winners = [c for c in comparisons if c.beats and c.incumbent == incumbent.number]
    best = max(winners, key=lambda c: c.difference, default=None)
    return WinnerDecision(best.trial if best else incumbent.number, incumbent.number, confidence,
                          tuple(comparisons), default.number)


def _comparison(challenger: TrialRecord, incumbent: TrialRecord,
                predictions: Callable[[TrialRecord], StoredPredictions | None], task: Any,
                confidence: float, rounds: int, seed: int) -> Comparison | None:
    """The challenger against the incumbent, None where either has no stored predictions."""
    base, found = predictions(incumbent), predictions(challenger)
    if base is None or found is None:
        return None
    return _compare(challenger.number, incumbent.number, found, base, task, confidence, rounds,
                    seed)


def _incumbent(default: TrialRecord, candidates: Sequence[TrialRecord]) -> TrialRecord:
    """The best validated competing baseline (ties as in `TrialRecord.rank_key`), or the engine
    default's full run when no baseline competes.

    The default must earn its place against the field's method beyond noise like any other
    challenger: comparing the two validation scores as they stand favoured it, since the
    default's score is the best of its checkpoints on each fold's own validation samples. Over
    26 logged searches of the quality tasks the default validated higher on 14, and on those
    the classical method's bag tested higher on 8, equal on 5, lower on 1
    (docs/benchmarks/incumbent_choice.md, docs/benchmarks/findings.md)."""
    rivals = [r for r in candidates if r.plan.stage == Stage.BASELINE and r.val_score is not None]
    return min(rivals, key=TrialRecord.rank_key, default=default)


def _compare(trial: int, incumbent: int, challenger: StoredPredictions, base: StoredPredictions,
             task: Any, confidence: float, rounds: int, seed: int) -> Comparison:
    """Both trials' predictions on the rows they share, compared by paired bootstrap."""
    y, new, old = shared_rows(challenger, base, task)

    def score(rows: np.ndarray) -> float:
        return float(task.score(y[rows], new[rows]).score - task.score(y[rows], old[rows]).score)

    difference, lower = paired_bootstrap(score, len(y), confidence, rounds, seed)
    return Comparison(trial, incumbent, len(y), difference, lower)


def shared_rows(
    a: StoredPredictions, b: StoredPredictions, task: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets, a's predictions, b's predictions) on the validation rows both predicted:
    out-of-fold rows matched by index, or the hold-out split's rows in order."""
    rows = shared_validation_rows([a, b])
    if rows is None:
        return task.val.y, a.val, b.val
    return task.development.y[rows], on_rows(a, rows).val, on_rows(b, rows).val
