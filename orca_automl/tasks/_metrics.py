"""Loss and metric per task type.

The search maximises `Metric.score` (the metric, negated when lower is better), so one
objective direction serves every task type while tables still show the metric itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from orca_automl.tasks._base import Normalizer


@dataclass(frozen=True)
class Metric:
    """A named metric on numpy predictions (in the task's original target units)."""

    name: str
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray], float]

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(self.fn(y_true, y_pred))

    def score(self, value: float) -> float:
        """The value the search maximises."""
        return value if self.higher_is_better else -value


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """scikit-learn's accuracy_score without its input checks, which cost ~2 ms a call: the
    winner's bootstrap scores two models 1000 times per comparison (tested equal to it)."""
    return float(np.mean(np.asarray(y).reshape(-1) == proba.argmax(axis=1)))


def _macro_f1(y: np.ndarray, proba: np.ndarray) -> float:
    return float(f1_score(y.astype(int), (proba > 0.5).astype(int), average="macro", zero_division=0))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's r2_score (uniform average over outputs; a constant output scores 1.0
    when predicted exactly, else 0.0) without its input checks, for the same reason as
    `_accuracy` (tested equal to it)."""
    if len(y) < 2:  # as scikit-learn: undefined
        return float("nan")
    y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    p2 = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    residual = ((y2 - p2) ** 2).sum(axis=0)
    total = ((y2 - y2.mean(axis=0)) ** 2).sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    scores = np.where(total > 0, 1.0 - residual / safe, np.where(residual == 0, 1.0, 0.0))
    return float(scores.mean())


def _relative_l2(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over samples of ||pred - y|| / ||y|| (the PDE benchmarks' error)."""
    diff = np.linalg.norm((pred - y).reshape(len(y), -1), axis=1)
    ref = np.linalg.norm(y.reshape(len(y), -1), axis=1) + 1e-12
    return float(np.mean(diff / ref))


METRICS: dict[str, Metric] = {
    "classification": Metric("accuracy", True, _accuracy),
    "multilabel": Metric("macro_f1", True, _macro_f1),
    "regression": Metric("r2", True, _r2),
    "dense": Metric("relative_l2", False, _relative_l2),
}


def metric_for(task_type: str) -> Metric:
    """The task type's metric, on predictions as `to_predictions` makes them."""
    return METRICS[task_type]


def to_predictions(task_type: str, normalizer: Normalizer, outputs: np.ndarray) -> np.ndarray:
    """A model's raw outputs as predictions, the one form metrics, ensembles and stored
    out-of-fold predictions use: class probabilities (classification), label probabilities
    (multilabel), values in the task's own units (regression, dense). Averaging predictions
    of this form is what an ensemble does."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if task_type == "classification":
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if task_type == "multilabel":
        return 1.0 / (1.0 + np.exp(-outputs))
    return normalizer.denormalize_y(outputs.astype(np.float32))


def loss_for(task_type: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Training loss on model outputs and (normalised) targets."""
    if task_type == "classification":
        return F.cross_entropy
    if task_type == "multilabel":
        return F.binary_cross_entropy_with_logits
    return F.mse_loss


def prediction_loss(
    task_type: str, normalizer: Normalizer, y: np.ndarray, predictions: np.ndarray
) -> float:
    """The training loss, computed from predictions instead of raw outputs: cross-entropy of
    the probabilities, binary cross-entropy, or the squared error in normalised units."""
    return float(sample_losses(task_type, normalizer, y, predictions).mean())


def sample_losses(
    task_type: str, normalizer: Normalizer, y: np.ndarray, predictions: np.ndarray
) -> np.ndarray:
    """`prediction_loss` of each sample (its mean over labels or values): what a paired test
    compares sample by sample for any task type."""
    p = np.asarray(predictions, dtype=np.float64)
    if task_type == "classification":
        picked = p[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
        return -np.log(np.clip(picked, 1e-12, None))
    if task_type == "multilabel":
        q = np.clip(p, 1e-12, 1 - 1e-12)
        t = np.asarray(y, dtype=np.float64)
        per_label = -(t * np.log(q) + (1 - t) * np.log(1 - q))
        return per_label.reshape(len(y), -1).mean(axis=1)
    diff = normalizer.normalize_y(p.astype(np.float32)) - normalizer.normalize_y(
        np.asarray(y, dtype=np.float32))
    return np.square(diff.astype(np.float64)).reshape(len(y), -1).mean(axis=1)
