"""The align stage's label-aware term (align.label_weight) and its metric options, on a tiny
BERT: the term changes what the embedder learns, never what the stage records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_task
from test_cycle import tiny_config

import orca_automl.cycle._align as align_module
from orca_automl.alignment import AlignmentMetric, create_metric, label_structure_loss
from orca_automl.config import OrcaConfig
from orca_automl.cycle import CycleCallback, build_model
from orca_automl.cycle._align import AlignOutcome, align, target_labels
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Split, Task

CPU = torch.device("cpu")


def noisy_task(task_type: str = "classification") -> Task:
    """The toy task with noise that hides much of the class structure from a fresh embedder
    (between-class share ~0.5 instead of ~0.99), so there is structure left to keep."""
    task = make_task(task_type, n=96)
    rng = np.random.default_rng(0)
    noisy = task.train.X + 2.0 * rng.standard_normal(task.train.X.shape).astype(np.float32)
    return dataclasses.replace(task, train=Split(noisy, task.train.y))


class RecordingMetric(AlignmentMetric):
    """Delegates to a real metric and keeps every value it returned, in order."""

    def __init__(self, inner: AlignmentMetric) -> None:
        self.inner = inner
        self.values: list[float] = []

    def fit_source(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.inner.fit_source(features, labels)

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        value = self.inner(features, labels)
        self.values.append(float(value.detach()))
        return value


def run_align(
    config: OrcaConfig, task: Task, monkeypatch: pytest.MonkeyPatch
) -> tuple[AlignOutcome, list[float], float]:
    """Align a fresh model; returns the outcome, every distance the metric returned, and the
    between-class share of the embedded training set afterwards."""
    recorders: list[RecordingMetric] = []

    def recording(name: str, **params: object) -> AlignmentMetric:
        recorders.append(RecordingMetric(create_metric(name, **params)))
        return recorders[-1]

    monkeypatch.setattr(align_module, "create_metric", recording)
    model = build_model(task, config.model, config.seed)
    outcome = align(model, task, config.align, config.seed, CPU, CycleCallback())
    with torch.no_grad():
        features = model.align_features(torch.from_numpy(task.train.X))
        share = -label_structure_loss(features, torch.from_numpy(target_labels(task))).item()
    return outcome, recorders[0].values, share


def test_label_weight_zero_never_computes_the_term(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise AssertionError("label term computed at label_weight 0")

    monkeypatch.setattr(align_module, "label_structure_loss", refuse)
    config = tiny_config(tiny_bert_dir, align={"metric": "mmd", "lr": 1e-2})
    assert config.align.label_weight == 0.0
    outcome, distances, _ = run_align(config, noisy_task(), monkeypatch)
    assert len(outcome.curve) == 10 and outcome.curve == distances[1:-1]


@pytest.mark.parametrize("metric", ["mmd", "otdd_gaussian"])
def test_label_term_keeps_classes_apart_and_the_record_stays_the_distance(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, metric: str
) -> None:
    task = noisy_task()
    runs = {}
    for weight in (0.0, 10.0):
        config = tiny_config(
            tiny_bert_dir, align={"metric": metric, "lr": 1e-2, "steps": 20, "label_weight": weight}
        )
        runs[weight] = run_align(config, task, monkeypatch)
    (plain, _, plain_share), (labelled, distances, labelled_share) = runs[0.0], runs[10.0]
    assert labelled_share > plain_share + 0.05
    # The curve and the probes hold what the metric returned, not distance + weight * term.
    assert labelled.curve == distances[1:-1]
    assert (labelled.initial, labelled.final) == (distances[0], distances[-1])
    assert min(labelled.curve) > 0.0  # the total would be < 0 once the term passes 0.1 / 10
    # Same seed, same first batch, same initial embedder: identical until the first update.
    assert labelled.initial == plain.initial and labelled.curve[0] == plain.curve[0]
    assert labelled.curve[1:] != plain.curve[1:]


def test_regression_aligns_with_pseudo_labels(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(
        tiny_bert_dir, align={"metric": "sliced_wasserstein", "steps": 3, "label_weight": 1.0}
    )
    outcome, _, _ = run_align(config, make_task("regression"), monkeypatch)
    assert len(outcome.curve) == 3 and np.isfinite(outcome.curve).all()


def test_metric_none_does_nothing_whatever_the_label_weight(tiny_bert_dir: Path) -> None:
    task = noisy_task()
    config = tiny_config(tiny_bert_dir, align={"metric": "none", "label_weight": 5.0})
    model = build_model(task, config.model, config.seed)
    before = [p.detach().clone() for p in model.embedder.parameters()]
    outcome = align(model, task, config.align, config.seed, CPU, CycleCallback())
    assert outcome == AlignOutcome()
    assert all(torch.equal(a, b) for a, b in zip(before, model.embedder.parameters(), strict=True))


@pytest.mark.parametrize(
    ("metric", "args", "match"),
    [
        ("otdd_gaussian", {"reg": -0.1}, "reg must be a finite number > 0"),
        ("otdd_gaussian", {"blur": 0.05}, "no parameter 'blur': valid ones are outer, reg"),
        ("sliced_wasserstein", {"n_projections": 0}, "n_projections must be an integer >= 1"),
        ("mmd", {"bandwidth_scales": 2.0}, "bandwidth_scales must be a non-empty list"),
    ],
)
def test_bad_metric_args_are_refused_before_anything_trains(
    tiny_bert_dir: Path, metric: str, args: dict[str, object], match: str
) -> None:
    task = noisy_task()
    config = tiny_config(tiny_bert_dir, align={"metric": metric, "metric_args": args})
    model = build_model(task, config.model, config.seed)
    before = [p.detach().clone() for p in model.embedder.parameters()]
    with pytest.raises(OrcaInputError, match=match):
        align(model, task, config.align, config.seed, CPU, CycleCallback())
    assert all(torch.equal(a, b) for a, b in zip(before, model.embedder.parameters(), strict=True))
