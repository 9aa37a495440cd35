"""From raw arrays (or tables) to a checked, split and normalised `Task`.

Every source (built-in data, .npz, csv/parquet, folders) goes through `build_task`, so the
checks, the task-type inference, the hold-out rules and the normalisation are the same for
all of them:
1. check shapes, lengths and finiteness, naming the source and the array at fault;
2. resolve the task type (explicit, else inferred from the targets) and encode the targets;
3. carve missing splits from training data: a test split with the fixed seed `TEST_SEED`
   (the same test set for every search seed, so runs with different seeds stay comparable
   and no seed trains on another's test rows), then the validation split with the task seed;
4. fit the table encoding and the normaliser on the training split only (series: whether to
   z-normalise each on its own, by 1-NN leave-one-out there), apply to all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from orca_automl.errors import OrcaInputError
from orca_automl.inputs import real_array
from orca_automl.tasks._base import TASK_TYPES, Normalizer, Split, Task
from orca_automl.tasks._splits import holdout_indices
from orca_automl.tasks._tables import TableEncoding

TEST_SEED = 0
MAX_INFERRED_CLASSES = 50  # integer targets with more distinct values are inferred as regression
SPLITS = ("train", "val", "test")
#: Target kinds: booleans, integers, floats, and text (class names).
LABEL_KINDS = "biufUS"

Features: TypeAlias = "np.ndarray | pd.DataFrame"


@dataclass(frozen=True)
class RawData:
    """Inputs and targets as read from a source; `None` where the source has no such split.

    X is an array ((N, C, L), (N, C, H, W) or (N, F)) or, for tables, a DataFrame of the
    input columns. Validation and test splits must come as (X, y) pairs.
    """

    X_train: Features
    y_train: np.ndarray
    X_val: Features | None = None
    y_val: np.ndarray | None = None
    X_test: Features | None = None
    y_test: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def pair(self, split: str) -> tuple[Features | None, np.ndarray | None]:
        return getattr(self, f"X_{split}"), getattr(self, f"y_{split}")


def build_task(
    name: str,
    raw: RawData,
    *,
    modality: str,
    source: str,
    intro: str,
    seed: int,
    val_fraction: float | None,
    default_val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    task_type: str | None = None,
    extras: dict[str, object] | None = None,
) -> Task:
    """Check `raw`, resolve the task type, carve missing splits, normalise: the Task.

    `source` names the data in error messages (a file name); `intro` starts the task's
    one-line description (where the data come from and what is predicted). `val_fraction`
    (None: `default_val_fraction`) and `test_fraction` apply only to splits `raw` lacks.
    """
    raw = _check_arrays(raw, modality, source)
    resolved = resolve_task_type(task_type, raw.X_train, raw.y_train, source)
    raw, class_names = _encode_targets(raw, resolved, source)
    stratify = resolved == "classification"
    if raw.X_test is None:
        raw = _carve(raw, "test", test_fraction, TEST_SEED, stratify, source)
    if raw.X_val is None:
        fraction = default_val_fraction if val_fraction is None else val_fraction
        raw = _carve(raw, "val", fraction, seed, stratify, source)
    extras = dict(extras or {})
    extras["source"] = source
    if isinstance(raw.X_train, pd.DataFrame):
        raw, encoding = _encode_tables(raw, source)
        extras["table_encoding"] = encoding.to_dict()
    X = {s: np.asarray(raw.pair(s)[0], dtype=np.float32) for s in SPLITS}
    y = {s: np.asarray(raw.pair(s)[1]) for s in SPLITS}
    per_sample, why = choose_per_sample(modality, resolved, X["train"], y["train"])
    normalizer = fit_normalizer(resolved, X["train"], y["train"], per_sample)
    splits = {s: Split(normalizer.normalize_x(X[s]), y[s]) for s in SPLITS}
    num_outputs = (
        len(class_names)
        if class_names is not None
        else int(y["train"].shape[1])  # labels, targets or output channels
    )
    size = f"{modality} {X['train'].shape[1:]}"
    if class_names is not None:
        size += f", {len(class_names)} classes"
    counts = " / ".join(f"{s} {len(splits[s])}" for s in SPLITS)
    return Task(
        name=name,
        task_type=resolved,
        modality=modality,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        num_outputs=num_outputs,
        normalizer=normalizer,
        class_names=class_names,
        description="; ".join((intro, f"{resolved}, {size}", counts, *raw.notes, *why)),
        extras=extras,
    )


def _check_arrays(raw: RawData, modality: str, source: str) -> RawData:
    """Row counts, per-sample shapes and finite values, split by split; arrays as float."""
    expected_ndim = {"tabular": 2, "1d": 3, "2d": 4}[modality]
    checked: dict[str, Any] = {}
    reference: tuple[int, ...] | None = None
    for s in SPLITS:
        X, y = raw.pair(s)
        if (X is None) != (y is None):
            given, absent = (f"X_{s}", f"y_{s}") if y is None else (f"y_{s}", f"X_{s}")
            raise OrcaInputError(
                f"{source}: {given} is given without {absent}; give both or neither"
            )
        if X is None or y is None:
            continue
        y = np.asarray(y)
        if y.ndim == 0 or np.ndim(X) == 0:
            single = f"y_{s}" if y.ndim == 0 else f"X_{s}"
            raise OrcaInputError(f"{source}: {single} is a single value, not one per sample; "
                                 "give arrays with one row per sample")
        if len(X) != len(y):
            raise OrcaInputError(
                f"{source}: X_{s} has {len(X)} rows but y_{s} has {len(y)}; "
                "give one target per sample"
            )
        if len(y) == 0:
            raise OrcaInputError(f"{source}: the {s} split is empty; give it samples")
        if y.dtype.kind not in LABEL_KINDS:
            raise OrcaInputError(f"{source}: y_{s} holds {y.dtype} values: give real numbers, or "
                                 "text for class labels")
        if y.dtype.kind == "f":
            _check_finite(y, f"y_{s}", source)
        if not isinstance(X, pd.DataFrame):
            X = _as_float(X, f"X_{s}", source)
            if X.ndim != expected_ndim:
                raise OrcaInputError(
                    f"{source}: X_{s} has shape {X.shape}; {modality} inputs need "
                    f"{expected_ndim} dimensions"
                )
            if 0 in X.shape[1:]:
                raise OrcaInputError(
                    f"{source}: X_{s} has shape {X.shape}: each sample holds no values; give "
                    "samples with at least one feature"
                )
            if reference is None:
                reference = X.shape[1:]
            elif X.shape[1:] != reference:
                raise OrcaInputError(
                    f"{source}: X_{s} has per-sample shape {X.shape[1:]} but X_train has "
                    f"{reference}; give every split the same shape"
                )
            _check_finite(X, f"X_{s}", source)
        checked[f"X_{s}"], checked[f"y_{s}"] = X, y
    return replace(raw, **checked)


def _as_float(X: object, key: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(X)
    except (TypeError, ValueError):
        raise OrcaInputError(f"{source}: {key} is not numeric; give inputs as numbers") from None
    return real_array(array, f"{source}: {key}").astype(np.float64)


def _check_finite(a: np.ndarray, key: str, source: str) -> None:
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise OrcaInputError(
            f"{source}: {key} has {bad} NaN or infinite values; remove or impute them"
        )


def _is_dense_target(X: Features, y: np.ndarray) -> bool:
    """y has the input's spatial shape: (N, C_out, *spatial), or (N, H, W) for images."""
    if isinstance(X, pd.DataFrame) or X.ndim < 3 or y.dtype.kind not in "biuf":
        return False
    spatial = X.shape[2:]
    return (y.ndim == X.ndim and y.shape[2:] == spatial) or (X.ndim == 4 and y.shape[1:] == spatial)


def _is_binary_matrix(y: np.ndarray) -> bool:
    return y.ndim == 2 and y.dtype.kind in "biuf" and bool(np.isin(y, (0, 1)).all())


def resolve_task_type(explicit: str | None, X: Features, y: np.ndarray, source: str) -> str:
    """The explicit task type if the targets fit it, else the type inferred from the targets.

    Inference (only where it is safe): targets with the input's spatial shape -> dense; a 0/1
    matrix (N, K>1) -> multilabel; string, boolean or integer labels with at most
    MAX_INFERRED_CLASSES distinct values -> classification; other numbers -> regression.
    """
    column = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if explicit is None:
        if _is_dense_target(X, y):
            return "dense"
        if _is_binary_matrix(y) and y.shape[1] > 1:
            return "multilabel"
        if column.ndim == 1 and (
            column.dtype.kind in "USOb"
            or (column.dtype.kind in "iu" and len(np.unique(column)) <= MAX_INFERRED_CLASSES)
        ):
            return "classification"
        explicit = "regression"
    if explicit not in TASK_TYPES:
        raise OrcaInputError(
            f"unknown task type {explicit!r}: choose one of {', '.join(TASK_TYPES)}"
        )
    # (N, L) targets of (N, C, L) series: dense when asked for, never inferred (could be K=L
    # regression targets)
    series_map = isinstance(X, np.ndarray) and X.ndim == 3 and y.shape[1:] == X.shape[2:]
    problem = {
        "classification": column.ndim != 1
        or (column.dtype.kind == "f" and not np.array_equal(column, np.round(column))),
        "multilabel": not _is_binary_matrix(y),
        "regression": y.dtype.kind not in "biuf" or y.ndim > 2,
        "dense": not (_is_dense_target(X, y) or series_map),
    }[explicit]
    if problem:
        need = {
            "classification": "one class label per sample (strings or integers)",
            "multilabel": "a 0/1 matrix (N, labels)",
            "regression": "numbers, shape (N,) or (N, targets)",
            "dense": "targets with the input's spatial shape, (N, channels, *spatial)",
        }[explicit]
        raise OrcaInputError(
            f"{source}: y_train (shape {y.shape}, dtype {y.dtype}) does not fit task type "
            f"{explicit!r}, which needs {need}; fix the targets or pass another task_type"
        )
    return explicit


def _encode_targets(
    raw: RawData, task_type: str, source: str
) -> tuple[RawData, tuple[str, ...] | None]:
    """Class labels to int64 indices (names kept); other targets to float32 arrays."""
    ys = {s: y for s in SPLITS if (y := raw.pair(s)[1]) is not None}
    if task_type != "classification":
        out: dict[str, Any] = {
            f"y_{s}": _float_targets(y, task_type, raw.X_train) for s, y in ys.items()
        }
        return replace(raw, **out), None
    labels = {s: _labels(y, f"{source}: y_{s}") for s, y in ys.items()}
    classes = np.unique(labels["train"])
    if len(classes) < 2:
        raise OrcaInputError(
            f"{source}: y_train has only {len(classes)} class ({classes.tolist()}); "
            "a classifier needs at least 2"
        )
    for s, lab in labels.items():
        unseen = np.setdiff1d(np.unique(lab), classes)
        if len(unseen):
            raise OrcaInputError(
                f"{source}: y_{s} has classes {unseen.tolist()} absent from y_train; "
                "add training samples of those classes or drop them"
            )
    out = {f"y_{s}": np.searchsorted(classes, lab).astype(np.int64) for s, lab in labels.items()}
    return replace(raw, **out), tuple(str(c) for c in classes)


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    """1D labels; integral floats as int64 so class names read "3", not "3.0" (other floats
    are refused: casting would truncate 0.5 to class 0)."""
    y = y.reshape(len(y))
    if y.dtype.kind != "f":
        return y
    if not np.array_equal(y, np.round(y)):
        raise OrcaInputError(f"{where} holds class labels that are not whole numbers: give "
                             "integer or text labels like y_train's")
    return y.astype(np.int64)


def _float_targets(y: np.ndarray, task_type: str, X: Features) -> np.ndarray:
    y = y.astype(np.float32)
    if task_type == "regression":
        return y.reshape(len(y), -1)
    if task_type == "dense" and y.ndim == X.ndim - 1:
        return y[:, None]  # one output channel
    return y


def _carve(
    raw: RawData, split: str, fraction: float, seed: int, stratify: bool, source: str
) -> RawData:
    """Hold `fraction` of the training rows out as `split`, and say so in the notes."""
    keep, held = holdout_indices(
        raw.y_train, fraction, seed, stratify=stratify, what=f"{split} split of {source}"
    )
    how = "stratified, " if stratify else ""
    seed_note = "fixed seed" if split == "test" else "seed"
    return replace(
        raw,
        X_train=_take(raw.X_train, keep),
        y_train=raw.y_train[keep],
        **{f"X_{split}": _take(raw.X_train, held), f"y_{split}": raw.y_train[held]},
        notes=(*raw.notes, f"{split}: {fraction:.0%} held out of train ({how}{seed_note} {seed})"),
    )


def _take(X: Features, idx: np.ndarray) -> Features:
    return X.iloc[idx].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[idx]


def _encode_tables(raw: RawData, source: str) -> tuple[RawData, TableEncoding]:
    """One-hot categories seen in the training split only; every split to a float matrix."""
    assert isinstance(raw.X_train, pd.DataFrame)
    encoding = TableEncoding.fit(raw.X_train, source=source)
    out: dict[str, Any] = {}
    for s in SPLITS:
        X = raw.pair(s)[0]
        assert isinstance(X, pd.DataFrame)
        out[f"X_{s}"] = encoding.transform(X, source=f"{source} ({s})")
    return replace(raw, **out), encoding


#: Training rows (at most) that `choose_per_sample` compares the two normalisations on.
PER_SAMPLE_ROWS = 2000
#: One-sided 95% normal quantile: per-channel statistics replace the convention only when
#: their leave-one-out losses are lower beyond noise.
_BEYOND_NOISE = 1.645


def choose_per_sample(
    modality: str, task_type: str, X: np.ndarray, y: np.ndarray
) -> tuple[bool, tuple[str, ...]]:
    """Whether series are z-normalised one by one before the per-channel statistics (the UCR
    convention), and the description's note saying why.

    Per-sample normalisation keeps a series' shape and erases its level and amplitude. That
    is right where the class lies in the shape (GunPoint's are z-normalised at the source,
    BasicMotions' 1-NN gains 0.71 against 0.55) and ruinous where it lies in the level
    (JapaneseVowels' speakers differ in their mean cepstra: 1-NN 0.56 against 0.96,
    MiniRocket 0.76 against 0.97). So both are scored by 1-NN, leave-one-out on the training
    split (never validation or test rows), and the convention stays unless per-channel
    statistics alone lose less beyond noise (the mean of the paired per-row differences
    above 1.645 standard errors). Never for dense targets: the output depends on the input's
    level and amplitude (a PDE state). Only series are considered.
    """
    if modality != "1d" or task_type == "dense":
        return False, ()
    if len(X) < 3:
        return True, ()
    rows = np.random.default_rng(0).permutation(len(X))[:PER_SAMPLE_ROWS]
    X, y = X[rows], y[rows]
    scored = {flag: _one_nn_leave_one_out(
        fit_normalizer(task_type, X, y, flag).normalize_x(X), y, task_type)
        for flag in (True, False)}
    worse = scored[True][1] - scored[False][1]  # per row: per-sample's loss minus per-channel's
    per_sample = not worse.mean() > _BEYOND_NOISE * worse.std(ddof=1) / np.sqrt(len(worse))
    kind = "R^2" if task_type == "regression" else "accuracy"
    chosen, other = ("z-normalised one by one", "without") if per_sample else (
        "standardised per channel only", "z-normalised one by one")
    return per_sample, (f"series {chosen} (1-NN leave-one-out {kind} on training "
                        f"{scored[per_sample][0]:.3f}, {other} {scored[not per_sample][0]:.3f})",)


def _one_nn_leave_one_out(
    X: np.ndarray, y: np.ndarray, task_type: str
) -> tuple[float, np.ndarray]:
    """Each row predicted by its nearest other row: the score (accuracy, mean label agreement
    for multilabel, or R^2 over all targets) and each row's loss (its error, or squared
    error summed over targets)."""
    from sklearn.neighbors import NearestNeighbors

    flat = X.reshape(len(X), -1).astype(np.float64)
    # without a query, each fitted row's neighbours leave the row itself out
    nearest = NearestNeighbors(n_neighbors=1).fit(flat).kneighbors(return_distance=False)[:, 0]
    target = y.reshape(len(y), -1).astype(np.float64)
    predicted = target[nearest]
    if task_type in ("classification", "multilabel"):
        losses = (predicted != target).mean(axis=1)
        return float(1.0 - losses.mean()), losses
    losses = ((target - predicted) ** 2).sum(axis=1)
    total = ((target - target.mean(axis=0)) ** 2).sum()
    return (float(1.0 - losses.sum() / total) if total > 0 else 0.0), losses


def fit_normalizer(task_type: str, X: np.ndarray, y: np.ndarray, per_sample: bool) -> Normalizer:
    """Statistics of the raw training split: per channel (series, images) or per feature,
    after each series' own z-normalisation when `per_sample` (see `choose_per_sample`).
    Constant channels get std 1, not a division by 0."""
    if per_sample:
        X = Normalizer(
            np.zeros((), np.float32), np.ones((), np.float32), per_sample=True
        ).normalize_x(X)
    x_mean, x_std = _channel_stats(X)
    y_mean = y_std = None
    if task_type in ("regression", "dense"):
        y_mean, y_std = _channel_stats(y)
    return Normalizer(x_mean, x_std, per_sample, y_mean, y_std)


def _channel_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over samples and spatial axes, shaped to broadcast against one sample."""
    axes = (0, *range(2, a.ndim))
    a = a.astype(np.float64)
    mean = a.mean(axis=axes, keepdims=True)[0]
    std = a.std(axis=axes, keepdims=True)[0]
    std[std < 1e-12] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
