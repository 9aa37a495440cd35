"""The compute budget: parsing "8gpu-hours" / "20cpu-minutes" / "90s" and the ledger that spends it.

The budget is device time summed over parallel workers: two workers busy for one minute
spend two device-minutes. Each finished trial is charged its measured device time; a new trial
starts only while what is already spent plus what the trials in flight have used so far stays
under the limit, so the budget is overrun by at most the remainder of the trials in flight.
`fits` adds expected durations, so the driver can also avoid starting trials that would
clearly run past a limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from orca_automl.errors import OrcaInputError

_UNITS: dict[str, float] = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
_PATTERN = re.compile(r"^(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?:(?P<kind>gpu|cpu)[-_ ]+)?(?P<unit>[a-z]+)$")
_EXAMPLES = "write a number, an optional cpu/gpu and a unit, e.g. 8gpu-hours, 20cpu-minutes, 90s, 1.5h"


@dataclass(frozen=True)
class Budget:
    """A parsed budget.

    kind: "gpu" (only GPU time counts; needs a visible GPU), "cpu", or "any" (the device the
    trials run on: GPU time when --gpus-per-trial > 0, else CPU time).
    """

    seconds: float
    kind: str
    text: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or self.seconds <= 0:
            raise OrcaInputError(f"budget {self.text!r} must be more than zero: {_EXAMPLES}")
        if self.kind not in ("gpu", "cpu", "any"):
            raise OrcaInputError(f"budget kind {self.kind!r} must be gpu, cpu or any")

    def to_attr(self) -> dict[str, object]:
        """The form stored on the study."""
        return {"text": self.text, "seconds": self.seconds, "kind": self.kind}


def parse_budget(text: str) -> Budget:
    """Parse a budget string.

    Example:
        >>> parse_budget("20cpu-minutes").seconds
        1200.0
        >>> parse_budget("1.5h").kind
        'any'
    """
    match = _PATTERN.match(text.strip().lower())
    if match is None or match["unit"] not in _UNITS:
        raise OrcaInputError(f"budget {text!r} is not understood: {_EXAMPLES}")
    seconds = float(match["number"]) * _UNITS[match["unit"]]
    return Budget(seconds=seconds, kind=match["kind"] or "any", text=text.strip())


def format_seconds(seconds: float) -> str:
    """Short human form: 42s, 12.5min, 3.20h."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.2f}h"


class BudgetLedger:
    """Device-seconds spent against one budget.

    `spent` starts at what earlier, interrupted runs of the same budget session already spent
    (recomputed from the trials in the study, so nothing is counted twice).
    """

    def __init__(self, total_seconds: float, spent_seconds: float = 0.0) -> None:
        if total_seconds <= 0:
            raise ValueError("a budget must be positive")
        self.total = float(total_seconds)
        self.spent = float(spent_seconds)

    def charge(self, seconds: float) -> None:
        """Record one finished trial's device time."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"device time must be a finite non-negative number, got {seconds}")
        self.spent += seconds

    def committed(self, in_flight_seconds: float) -> float:
        """Spent plus what the trials in flight have used so far."""
        return self.spent + in_flight_seconds

    def can_start(self, limit: float, in_flight_seconds: float) -> bool:
        """Whether a new trial may start while staying under `limit` device-seconds."""
        return self.committed(in_flight_seconds) < min(limit, self.total)

    def fits(self, estimate: float, in_flight_expected: float, limit: float | None = None) -> bool:
        """Whether a trial expected to take `estimate` fits under `limit` (default: the total)
        next to the trials in flight, each counted at the larger of its elapsed and its
        expected device time."""
        cap = self.total if limit is None else min(limit, self.total)
        return self.spent + in_flight_expected + estimate <= cap

    @property
    def remaining(self) -> float:
        return max(0.0, self.total - self.spent)
