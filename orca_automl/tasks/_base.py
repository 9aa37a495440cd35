"""The Task: data splits, what is predicted, how it is scored.

A Task is what every other part of the package reads: the embedder picks its shape from
`modality` and `input_shape`, the head from `task_type` and `num_outputs`, the cycle its loss
and metric from here. Inputs are stored already normalised with statistics fitted on the
training split only (kept in `normalizer` so a saved model can apply them at predict time).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from orca_automl.errors import OrcaInputError
from orca_automl.evaluation import Evaluation

TaskType = Literal["classification", "multilabel", "regression", "dense"]
Modality = Literal["1d", "2d", "tabular"]
TASK_TYPES: tuple[str, ...] = ("classification", "multilabel", "regression", "dense")
MODALITIES: tuple[str, ...] = ("1d", "2d", "tabular")


@dataclass(frozen=True)
class Split:
    """One split: X is float32 with shape (N, *input_shape); y depends on the task type.

    classification: int64 (N,) class indices; multilabel: float32 (N, K) in {0, 1};
    regression: float32 (N, K); dense: float32 (N, C_out, *spatial) with spatial == the input's.
    """

    X: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.X) != len(self.y):
            raise OrcaInputError(
                f"X has {len(self.X)} rows but y has {len(self.y)}: give one target per sample"
            )

    def __len__(self) -> int:
        return len(self.X)


@dataclass(frozen=True)
class Normalizer:
    """Affine input (and regression/dense target) normalisation fitted on the training split.

    `x_mean`/`x_std` broadcast against one sample (shape (C, 1), (C, 1, 1) or (F,));
    `per_sample` z-normalises each series on its own (the UCR convention) before that,
    where `choose_per_sample` found it no worse.
    `y_mean`/`y_std` are set for regression and dense targets so the loss sees unit scale;
    predictions are mapped back with `denormalize_y`.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    per_sample: bool = False
    y_mean: np.ndarray | None = None
    y_std: np.ndarray | None = None

    def normalize_x(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if self.per_sample:
            axes = tuple(range(2, X.ndim))
            X = (X - X.mean(axis=axes, keepdims=True)) / (X.std(axis=axes, keepdims=True) + 1e-6)
        return ((X - self.x_mean) / self.x_std).astype(np.float32)

    def normalize_y(self, y: np.ndarray) -> np.ndarray:
        if self.y_mean is None or self.y_std is None:
            return y
        return ((y - self.y_mean) / self.y_std).astype(np.float32)

    def denormalize_y(self, y: np.ndarray) -> np.ndarray:
        if self.y_mean is None or self.y_std is None:
            return y
        return (y * self.y_std + self.y_mean).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        def lst(a: np.ndarray | None) -> object:
            return None if a is None else np.asarray(a).tolist()

        return {
            "x_mean": lst(self.x_mean),
            "x_std": lst(self.x_std),
            "per_sample": self.per_sample,
            "y_mean": lst(self.y_mean),
            "y_std": lst(self.y_std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Normalizer:
        def arr(v: object) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=np.float32)

        x_mean, x_std = arr(d["x_mean"]), arr(d["x_std"])
        assert x_mean is not None and x_std is not None
        return cls(x_mean, x_std, bool(d["per_sample"]), arr(d["y_mean"]), arr(d["y_std"]))


@dataclass(frozen=True)
class Task:
    """A supervised task with train / validation / test splits (validation never from test).

    Attributes:
        name: registry name or file stem.
        task_type: classification, multilabel, regression or dense.
        modality: "1d" (X is (N, C, L)), "2d" (X is (N, C, H, W)) or "tabular" (X is (N, F)).
        train, val, test: the splits, inputs already normalised by `normalizer`.
        num_outputs: classes (classification), labels (multilabel), targets (regression),
            output channels (dense).
        normalizer: the statistics fitted on the raw training split.
        class_names: optional display names of the classes.
        description: one line for tables and logs.
    """

    name: str
    task_type: str
    modality: str
    train: Split
    val: Split
    test: Split
    num_outputs: int
    normalizer: Normalizer
    class_names: tuple[str, ...] | None = None
    description: str = ""
    extras: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise OrcaInputError(
                f"unknown task type {self.task_type!r}: choose one of {', '.join(TASK_TYPES)}"
            )
        if self.modality not in MODALITIES:
            raise OrcaInputError(
                f"unknown modality {self.modality!r}: choose one of {', '.join(MODALITIES)}"
            )
        shapes = {s.X.shape[1:] for s in (self.train, self.val, self.test)}
        if len(shapes) != 1:
            raise OrcaInputError(
                f"task {self.name!r}: splits have different input shapes {sorted(shapes)}; "
                "give every split the same per-sample shape"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (C, L), (C, H, W) or (F,)."""
        return tuple(int(s) for s in self.train.X.shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one prediction (logits for classification)."""
        if self.task_type == "dense":
            return tuple(int(s) for s in self.train.y.shape[1:])
        return (self.num_outputs,)

    @property
    def development(self) -> Split:
        """Training and validation data together: what cross-validation folds partition
        (training rows first, then validation rows)."""
        return Split(np.concatenate([self.train.X, self.val.X]),
                     np.concatenate([self.train.y, self.val.y]))

    def fold_indices(self, k: int, seed: int) -> list[np.ndarray]:
        """Rows of `development` that each of k seeded folds validates on (stratified for
        classification); test rows never enter a fold."""
        from orca_automl.tasks._splits import fold_indices

        return fold_indices(self.development.y, k, seed,
                            stratify=self.task_type == "classification",
                            what=f"task {self.name!r}")

    def fold(self, index: int, k: int, seed: int) -> Task:
        """This task with fold `index` of k as its validation split and the rest of the
        development data as its training split; test and normalisation unchanged (the
        normalisation statistics come from the original training split, labels unused)."""
        held = self.fold_indices(k, seed)[index]
        dev = self.development
        kept = np.setdiff1d(np.arange(len(dev)), held)
        return dataclasses.replace(self, train=Split(dev.X[kept], dev.y[kept]),
                                   val=Split(dev.X[held], dev.y[held]))

    def refit(self) -> Task:
        """This task with all development data as its training split (a model refit on
        every sample, as after cross-validation); test and normalisation unchanged. The
        validation split stays for progress reports only: its rows are now trained on, so a
        refit run keeps its final checkpoint and its validation scores say nothing."""
        return dataclasses.replace(self, train=self.development)

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Evaluation:
        """Metric, score and loss of predictions (the one form, see `to_predictions`) against
        targets y: how an averaged or out-of-fold prediction is evaluated."""
        from orca_automl.tasks._metrics import metric_for, prediction_loss

        metric = metric_for(self.task_type)
        value = metric(y, predictions)
        loss = prediction_loss(self.task_type, self.normalizer, y, predictions)
        return Evaluation(metric.name, value, metric.score(value), loss)

    def sample_losses(self, y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """The loss of each sample's prediction (see `tasks._metrics.sample_losses`)."""
        from orca_automl.tasks._metrics import sample_losses

        return sample_losses(self.task_type, self.normalizer, y, predictions)

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Raw model outputs as predictions (see `to_predictions`)."""
        from orca_automl.tasks._metrics import to_predictions

        return to_predictions(self.task_type, self.normalizer, outputs)

    def fingerprint(self) -> str:
        """sha256 over the task's type and all split arrays: a resumed study must match it."""
        h = hashlib.sha256()
        h.update(f"{self.task_type}|{self.modality}|{self.num_outputs}".encode())
        for split in (self.train, self.val, self.test):
            for a in (split.X, split.y):
                a = np.ascontiguousarray(a)
                h.update(str((a.dtype.str, a.shape)).encode())
                h.update(a.tobytes())
        return h.hexdigest()
