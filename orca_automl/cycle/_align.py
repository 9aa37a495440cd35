"""Stage 2, distribution alignment: train only the embedder so the features the body
receives move towards the backbone's reference features under the chosen distance.

With align.label_weight > 0 the optimised loss is distance + label_weight * |initial
distance| * `label_structure_loss` on the same batch of features (a RECRAFT-style term that
keeps the target's classes apart while the distance moves them). The term lies in [-1, 0];
scaling it by the distance this run starts from makes the weight mean the same for every
metric (distances differ by orders of magnitude: MMD ~1, OTDD ~10^3). The curve and the probe values stay
the distance alone, so alignment losses remain comparable across trials whatever the weight.
With metric "none" (or steps 0) the stage does nothing, whatever label_weight says: "none"
is the search's no-alignment control, and a label-only stage would no longer be one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from orca_automl.alignment import (
    AlignmentMetric,
    create_metric,
    label_structure_loss,
    pseudo_labels,
)
from orca_automl.config import AlignConfig
from orca_automl.cycle._callback import CycleCallback
from orca_automl.cycle._model import OrcaModel
from orca_automl.tasks import Task


@dataclass
class AlignOutcome:
    """curve: the batch distance per step (without the label term); initial/final: the
    distance on one fixed, seeded subset of the training set before and after, comparable
    across runs (None: no alignment); step_seconds: time spent in its optimisation steps (what
    grows with the step count; the reference and the probes do not)."""

    curve: list[float] = field(default_factory=list)
    initial: float | None = None
    final: float | None = None
    step_seconds: float = 0.0


def target_labels(task: Task) -> np.ndarray:
    """Class labels where the task has them, else k-means pseudo-labels on the targets."""
    if task.task_type == "classification":
        return task.train.y.astype(np.int64)
    return pseudo_labels(task.train.y, k=10, seed=0)


def align(
    model: OrcaModel,
    task: Task,
    config: AlignConfig,
    seed: int,
    device: torch.device,
    callback: CycleCallback,
) -> AlignOutcome:
    """Run the align stage (nothing when the metric is "none" or steps is 0)."""
    metric = create_metric(config.metric, **config.metric_args)
    if not metric.trains or config.steps == 0:
        return AlignOutcome()
    reference = model.backbone.reference(config.source_samples, seed)
    metric.fit_source(
        torch.from_numpy(reference.features).to(device),
        torch.from_numpy(reference.labels).to(device),
    )
    X = torch.from_numpy(task.train.X).to(device)
    y = torch.from_numpy(target_labels(task)).to(device)
    gen = torch.Generator().manual_seed(seed)
    probe = torch.randperm(len(X), generator=gen)[: 4 * config.batch_size].to(device)

    body = [p for p in model.backbone.parameters() if p.requires_grad]
    for p in body:
        p.requires_grad_(False)  # only the embedder trains; no wasted body gradients
    model.backbone.eval()  # no dropout noise in the distance
    model.embedder.train()
    try:
        initial = _probe(model, metric, X[probe], y[probe])
        outcome = AlignOutcome(initial=initial)
        optimizer = torch.optim.Adam(model.embedder.parameters(), lr=config.lr)
        for step in range(config.steps):
            began = time.perf_counter()
            idx = torch.randperm(len(X), generator=gen)[: config.batch_size].to(device)
            features = model.align_features(X[idx])
            distance = metric(features, y[idx])
            if not torch.isfinite(distance):
                raise FloatingPointError(
                    f"alignment diverged (distance {float(distance)}) at step {step}: lower "
                    "align.lr"
                )
            loss = distance
            if config.label_weight > 0:  # skipped at 0: the default path stays bit-identical
                weight = config.label_weight * abs(initial)
                loss = distance + weight * label_structure_loss(features, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            outcome.curve.append(float(distance.detach()))
            outcome.step_seconds += time.perf_counter() - began
            callback.on_align_step(step, outcome.curve[-1])
        outcome.final = _probe(model, metric, X[probe], y[probe])
    finally:
        for p in body:
            p.requires_grad_(True)
    return outcome


@torch.no_grad()
def _probe(model: OrcaModel, metric: AlignmentMetric, X: torch.Tensor, y: torch.Tensor) -> float:
    return float(metric(model.align_features(X), y))
