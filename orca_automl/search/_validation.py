"""How a configuration is scored: on the task's hold-out validation split, or by k-fold
cross-validation of its development data (training + validation; test never enters a fold).

Under cross-validation a trial is one run per fold, each a separate Ray task charged to the
budget, and its score is the mean over its folds. The short schedule runs the first few folds
of the same seeded partition (every short trial the same ones, so two configurations are
compared on the same samples); the full schedule runs all of them, so a promoted
configuration becomes a bag of one model per fold, and every sample of the development data
gets an out-of-fold prediction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError

#: `auto` cross-validates development sets below this many samples (hold-out above). A
#: hold-out split of a fifth of 2000 samples scores an accuracy near 0.99 within about
#: +-0.005 (one standard error), as wide as the gaps between the models it must choose from;
#: five folds score every development sample, and the bag of fold models learns from all.
AUTO_CV_BELOW = 2000
#: Folds of `auto`, and how many of them a short trial runs.
AUTO_FOLDS = 5
SHORT_FOLDS = 2
_SPEC = re.compile(r"^cv:(?P<folds>\d+)(?:/(?P<short>\d+))?$")
_EXAMPLES = "use auto, holdout, cv:K or cv:K/S (K folds, S of them for short trials), e.g. cv:5"


@dataclass(frozen=True)
class Validation:
    """folds: 0 for the hold-out split, else K; short_folds: how many of them a short trial
    runs; seed: the partition's seed (the search's)."""

    folds: int = 0
    short_folds: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds == 0 and self.short_folds == 0:
            return
        if self.folds < 2 or not 1 <= self.short_folds <= self.folds:
            raise OrcaInputError(f"validation cv:{self.folds}/{self.short_folds}: {_EXAMPLES}")

    @property
    def cross_validated(self) -> bool:
        return self.folds > 0

    def folds_of(self, stage: Stage) -> tuple[int, ...]:
        """The fold indices a trial of `stage` runs (empty: one run on the hold-out split)."""
        if not self.cross_validated:
            return ()
        return tuple(range(self.short_folds if stage == Stage.SHORT else self.folds))

    def describe(self) -> str:
        if not self.cross_validated:
            return "hold-out validation split"
        return (f"{self.folds}-fold cross-validation (short trials: {self.short_folds} folds), "
                f"seed {self.seed}")

    def to_attr(self) -> dict[str, object]:
        """The form stored on the study (a resume must use the same protocol)."""
        kind = "cv" if self.cross_validated else "holdout"
        return {"kind": kind, "folds": self.folds, "short_folds": self.short_folds, "seed": self.seed}


def parse_validation(text: str, development_size: int, seed: int) -> Validation:
    """`auto`, `holdout`, `cv:K` or `cv:K/S` for a task with `development_size` samples.

    Example:
        >>> parse_validation("cv:5", 60, seed=0)
        Validation(folds=5, short_folds=2, seed=0)
        >>> parse_validation("auto", 2000, seed=0).cross_validated
        False
    """
    spec = text.strip().lower()
    if spec == "holdout":
        return Validation()
    if spec == "auto":
        if development_size >= AUTO_CV_BELOW:
            return Validation()
        return Validation(AUTO_FOLDS, SHORT_FOLDS, seed)
    match = _SPEC.match(spec)
    if match is None:
        raise OrcaInputError(f"validation {text!r} is not understood: {_EXAMPLES}")
    folds = int(match["folds"])
    short = int(match["short"]) if match["short"] else min(SHORT_FOLDS, folds)
    if folds < 2:
        raise OrcaInputError(f"validation {text!r}: cross-validation needs 2 folds or more")
    if folds > development_size // 2:
        raise OrcaInputError(
            f"validation {text!r}: {development_size} training and validation samples are too "
            f"few for {folds} folds (each needs at least 2); use fewer folds or holdout"
        )
    return Validation(folds, short, seed)
