"""Which saved model the search hands the user: the incumbent (the engine's default, or a
competing reference baseline validated at least as high) stays the winner unless a challenger
(another fully trained configuration, an ensemble, or a baseline) beats it beyond the noise
of the validation samples.

On small data the best of many noisy validation scores is a winner's curse: a challenger
that scores higher than the default on 10 samples usually is not better. So the search
starts from an incumbent, the full run of the engine's default configuration (what
`orca-train` does) or, when baselines compete and one validates at least as high, that baseline
(the field's own method, what the user would run without orca-automl), and replaces it only
by a challenger whose advantage survives a paired bootstrap over the validation samples both
were predicted on (out-of-fold predictions under cross-validation, the hold-out split
otherwise): the lower end of a one-sided confidence interval of the score difference must
lie above zero. The evidence of every comparison is stored on the study.
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
    "the incumbent, the engine's default configuration (its full run) or a competing reference "
    "baseline whose validation score is at least as high, stays the winner unless a challenger "
    "(another full run, an ensemble, or a baseline) beats its validation score beyond noise: a "
    "paired bootstrap over the samples both were predicted on, whose one-sided lower confidence "
    "bound of the score difference is above 0"
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
    default: int | None = None  # the engine default's full run (the incumbent unless beaten)

    def reason(self, trial: int) -> str:
        """Why a full run stands where it does, in a few words for tables."""
        by_default = self.incumbent == self.default or self.default is None
        if trial == self.incumbent:
            what = ("the engine default" if by_default
                    else "a reference baseline validated at least as high as the engine default")
            return f"incumbent: {what}" + (" (winner)" if trial == self.winner else "")
        found = next((c for c in self.comparisons if c.trial == trial), None)
        if found is None:
            return "best validation score" if trial == self.winner else "-"
        beats = "beats the default" if by_default else "beats the incumbent"
        verdict = beats if found.beats else "not beyond noise"
        return (f"{verdict}: {found.difference:+.3f}, {self.confidence:.0%} lower bound "
                f"{found.lower_bound:+.3f} on {found.samples} samples"
                + (" (winner)" if trial == self.winner else ""))

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
    incumbent = _incumbent(default, full)
    base = predictions(incumbent)
    comparisons = []
    for challenger in full:
        if challenger.number == incumbent.number or base is None:
            continue
        found = predictions(challenger)
        if found is None:
            continue
        comparisons.append(_compare(challenger.number, incumbent.number, found, base, task,
                                    confidence, rounds, seed))
    winners = [c for c in comparisons if c.beats]
    best = max(winners, key=lambda c: c.difference, default=None)
    return WinnerDecision(best.trial if best else incumbent.number, incumbent.number, confidence,
                          tuple(comparisons), default.number)


def _incumbent(default: TrialRecord, candidates: Sequence[TrialRecord]) -> TrialRecord:
    """The engine default's full run, or the competing baseline validated at least as high
    (the best such). Both were fixed before the search saw the data: choosing the higher of two
    or three validation scores is a fair choice between them, not the winner's curse of the
    best of many, which is what the search's own challengers must then clear beyond noise."""
    score = default.val_score
    rivals = [r for r in candidates if r.plan.stage == Stage.BASELINE and r.val_score is not None
              and score is not None and baseline_leads(r.val_score, score)]
    return min(rivals, key=TrialRecord.rank_key, default=default)


def baseline_leads(baseline: float, default: float) -> bool:
    """Whether a competing baseline validated `baseline` takes the incumbency from the engine
    default validated `default`: when it scores at least as high. An exact tie (common on a
    few dozen samples, where accuracy moves in steps of 0.02 or more) is no evidence for the
    22M-parameter model; the field's method is far cheaper to fit and serve, and on the quality
    tasks it tested at least as high as the default on 15 of 18 logged searches
    (docs/benchmarks/incumbent_choice.md), so equal evidence goes to it."""
    return baseline >= default


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
