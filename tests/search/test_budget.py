"""Budget strings and the ledger."""

from __future__ import annotations

import pytest

from orca_automl.errors import OrcaInputError
from orca_automl.search import BudgetLedger, parse_budget


@pytest.mark.parametrize(
    ("text", "seconds", "kind"),
    [
        ("8gpu-hours", 8 * 3600, "gpu"),
        ("2cpu-hours", 2 * 3600, "cpu"),
        ("20cpu-minutes", 20 * 60, "cpu"),
        ("90s", 90, "any"),
        ("1.5h", 5400, "any"),
        ("3 CPU minutes", 180, "cpu"),
        ("0.5gpu_hour", 1800, "gpu"),
        ("45min", 2700, "any"),
    ],
)
def test_budgets_parse(text: str, seconds: float, kind: str) -> None:
    budget = parse_budget(text)
    assert budget.seconds == pytest.approx(seconds)
    assert budget.kind == kind
    assert budget.to_attr() == {"text": text, "seconds": budget.seconds, "kind": kind}


@pytest.mark.parametrize(
    "text", ["", "8", "h", "8gpus", "8gpu", "eight hours", "1.5.h", "-3h", "0s", "2 parsecs", "1e3s", "8tpu-hours"]
)
def test_malformed_budgets_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(OrcaInputError, match="budget") as info:
        parse_budget(text)
    assert "e.g. 8gpu-hours" in str(info.value)
    assert "\n" not in str(info.value)


def test_ledger_starts_trials_only_under_the_limit() -> None:
    ledger = BudgetLedger(100.0, spent_seconds=40.0)
    assert ledger.can_start(limit=70.0, in_flight_seconds=20.0)
    assert not ledger.can_start(limit=70.0, in_flight_seconds=30.0)
    assert not ledger.can_start(limit=500.0, in_flight_seconds=60.0)  # never beyond the total
    ledger.charge(35.0)
    assert ledger.remaining == pytest.approx(25.0)
    assert ledger.fits(20.0, in_flight_expected=5.0)
    assert not ledger.fits(20.0, in_flight_expected=6.0)
    with pytest.raises(ValueError):
        ledger.charge(-1.0)
