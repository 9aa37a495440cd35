"""The real runner's runs of a trial: a refit run trains on all development data, keeps its
final checkpoint, and brings a model and test predictions but no validation predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orca_automl.config import OrcaConfig, Stage
from orca_automl.search import REFIT, CycleRunner, TrialRequest, execute_trial


def test_a_refit_run_trains_on_every_development_sample(  # type: ignore[no-untyped-def]
    tiny_bert_dir: Path, toy_task, monkeypatch
) -> None:
    from orca_automl.cycle import _runner as cycle_runner

    task = toy_task(n=40)
    seen = {}
    real = cycle_runner.refine

    def spy(model, part, config, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["train"], seen["select"] = part.train, config.select
        return real(model, part, config, *args, **kwargs)

    monkeypatch.setattr(cycle_runner, "refine", spy)
    config = OrcaConfig().with_overrides({
        "model.backbone": "hf", "model.backbone_args": {"name_or_path": str(tiny_bert_dir)},
        "model.embedder": "conv1d", "model.embedder_args": {"target_seq_len": 4},
        "align.metric": "none", "refine.steps": 4, "refine.eval_every": 2,
        "refine.select": "best",
    })
    outcome = execute_trial(CycleRunner(), TrialRequest(0, Stage.FULL, config, refit=True), task)
    assert outcome.result.error is None, outcome.result.traceback
    assert outcome.fold == REFIT and outcome.predictions is None and outcome.indices is None
    np.testing.assert_array_equal(seen["train"].X, task.development.X)
    assert seen["select"] == "final"  # no held-out rows to pick a checkpoint on
    assert outcome.model_archive and outcome.result.test is not None
    assert outcome.test_predictions is not None and len(outcome.test_predictions) == len(task.test)
    # the steps' share of the run reaches the trial's result (what a full run's estimate scales)
    assert 0 < outcome.result.step_seconds < outcome.result.device_seconds
