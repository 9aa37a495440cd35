"""The typed trial record: its user attributes are derived from its fields, and read back the
same through a real Optuna study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.config import OrcaConfig
from orca_automl.evaluation import Evaluation
from orca_automl.search import (
    PruneKind,
    PruneReason,
    Stage,
    StudyHandle,
    TrialPlan,
    TrialResult,
    from_attrs,
    to_attrs,
)


def _handle(tmp_path: Path) -> StudyHandle:
    return StudyHandle.open(f"sqlite:///{tmp_path}/s.db", "s", optuna.samplers.RandomSampler(0), {})


def test_every_field_is_one_attribute_of_the_same_name_in_plain_json() -> None:
    plan = TrialPlan(Stage.FULL, 2, 0.5, OrcaConfig().with_overrides({"refine.lr": 3e-4}),
                     engine_default=True, promoted_from=7, folds=(0, 1), refit=True)
    attrs = to_attrs(plan)
    assert set(attrs) == {"stage", "session", "device_share", "config", "engine_default",
                          "promoted_from", "folds", "refit", "members", "weights"}  # None: not written
    assert attrs["stage"] == "full" and type(attrs["stage"]) is str
    assert attrs["config"]["refine"]["lr"] == 3e-4
    json.dumps(attrs, allow_nan=False)  # strict JSON, as the dashboard parses it
    assert from_attrs(TrialPlan, attrs) == plan
    assert to_attrs(plan, "config") == {"config": attrs["config"]}


def test_non_finite_numbers_are_stored_as_null_and_read_back_as_nan() -> None:
    result = TrialResult(val=Evaluation("r2", math.nan, math.nan, math.inf), cost=1.5,
                         final_align_loss=math.inf, align_curve=(2.0, math.nan))
    attrs = to_attrs(result)
    json.dumps(attrs, allow_nan=False)
    assert attrs["val"] == {"metric": "r2", "value": None, "score": None, "loss": None}
    assert attrs["final_align_loss"] is None
    back = from_attrs(TrialResult, attrs)
    assert back.val is not None and math.isnan(back.val.value) and math.isnan(back.val.loss)
    assert back.final_align_loss is None  # an optional float: null stays None
    assert back.align_curve[0] == 2.0 and math.isnan(back.align_curve[1])


@pytest.mark.parametrize(("result", "state"), [
    (TrialResult(val=Evaluation("accuracy", 0.9, 0.9, 0.3), cost=1.0), TrialState.COMPLETE),
    (TrialResult(pruned=PruneReason(PruneKind.MEDIAN, "below the median")), TrialState.PRUNED),
    (TrialResult(pruned=PruneReason(PruneKind.ALIGNMENT, "x"), error="boom"), TrialState.FAIL),
])
def test_a_result_is_told_with_its_state_and_read_back_whole(
    tmp_path: Path, result: TrialResult, state: TrialState
) -> None:
    handle = _handle(tmp_path)
    trial = handle.study.ask()
    plan = TrialPlan(Stage.SHORT, session=1, config=OrcaConfig())
    handle.write(trial, plan)
    handle.finish(trial, result)
    (record,) = handle.records()
    assert record.state == state == result.state
    assert record.plan == plan and record.result == result
    if state == TrialState.COMPLETE:
        assert record.val_score == 0.9 and record.cost == 1.0
        assert handle.study.trials[0].values == [0.9, 1.0]
    else:
        assert record.val_score is None and record.cost is None


def test_a_running_trial_reads_as_its_plan_and_an_empty_result(tmp_path: Path) -> None:
    handle = _handle(tmp_path)
    handle.study.ask()  # killed before its plan was written
    (record,) = handle.records()
    assert record.state == TrialState.RUNNING
    assert record.plan == TrialPlan() and record.result == TrialResult()
