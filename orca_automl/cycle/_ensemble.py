"""Saved ensemble folders: a bag (one model per fold, equal weights) or a weighted ensemble
of saved models, served by `load_model` and `orca-predict` exactly like one model folder.

An ensemble predicts the weighted average of its members' predictions in the one form made
by `tasks.to_predictions` (probabilities for classification and multilabel, values in the
task's units otherwise). The folder holds a copy of each member's model folder under
members/<i>/ and ensemble.json; paths inside are relative, so the folder can move:

    {"format_version": 1,
     "members": ["members/0", "members/1"],   # relative to the ensemble folder
     "weights": [0.6, 0.4],                   # non-negative, sum 1
     "task": {...},                           # the members' task block (first member's meta)
     "gflops_per_sample": 2.4,                # summed member cost; null if one is unknown
     "scores": {...}, "notes": [...]}

Saving is atomic like `save_model`. Loading reads ensemble.json like a model folder's
meta.json (a regular UTF-8 file, its task block checked) and each member as a model folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orca_automl.cycle._meta import FORMAT_VERSION, check_task_block, fields_of, read_json
from orca_automl.cycle._saved import (
    ENSEMBLE_FILE,
    SavedPredictor,
    atomic_folder,
    load_single,
    read_meta,
)
from orca_automl.errors import OrcaInputError

if TYPE_CHECKING:
    import torch


def save_ensemble(
    members: Sequence[str | Path],
    directory: str | Path,
    weights: Sequence[float] | None = None,
    scores: dict[str, object] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Copy model folders into an ensemble folder at `directory`, replacing an older model or
    ensemble folder there atomically.

    Args:
        members: model folders written by `save_model`, all made for the same task.
        directory: where the ensemble folder goes.
        weights: one non-negative weight per member, normalised to sum 1; equal when None.
        scores: what the caller measured for the ensemble; `gflops_per_sample` defaults to
            the members' summed cost, like a model folder's scores.
        notes: remarks kept with the ensemble.

    Example:
        >>> save_ensemble(["fold0", "fold1", "fold2"], "winners/bag")  # doctest: +SKIP
        >>> load_model("winners/bag").predict(X)                         # doctest: +SKIP
    """
    folders = [Path(m) for m in members]
    if not folders:
        raise OrcaInputError("an ensemble needs at least one member: give saved model folders")
    normalised = normalised_weights(weights, len(folders))
    metas = [_member_meta(folder) for folder in folders]
    for folder, meta in zip(folders[1:], metas[1:], strict=True):
        _check_same_task(folder, meta["task"], folders[0], metas[0]["task"])
    directory = Path(directory)
    _check_replaceable(directory)
    cost = _summed_cost(metas)
    record = {
        "format_version": FORMAT_VERSION,
        "members": [f"members/{i}" for i in range(len(folders))],
        "weights": normalised,
        "task": metas[0]["task"],
        "gflops_per_sample": cost,
        "scores": {"gflops_per_sample": cost, **(scores or {})},
        "notes": notes or [],
    }
    with atomic_folder(directory) as tmp:
        for rel, folder in zip(record["members"], folders, strict=True):
            shutil.copytree(folder, tmp / rel)
        (tmp / ENSEMBLE_FILE).write_text(json.dumps(record, indent=2))
    return directory


@dataclasses.dataclass
class SavedEnsemble(SavedPredictor):
    """A loaded ensemble folder: the weighted average of its members' predictions."""

    members: list[SavedPredictor]
    weights: list[float]
    meta: dict[str, Any]

    def _predictions(self, X: np.ndarray) -> np.ndarray:
        # The inputs were checked once, by `predictions`; members skip their own checks.
        parts = [member._predictions(X) for member in self.members]
        mean = np.average(np.stack(parts), axis=0, weights=self.weights)
        return mean.astype(parts[0].dtype)


def load_ensemble(directory: Path, device: torch.device) -> SavedEnsemble:
    """An ensemble folder (ensemble.json and its member folders) as a `SavedEnsemble`."""
    path = directory / ENSEMBLE_FILE
    meta = read_json(path, "ensemble file")
    rels, weights = _layout(meta, path)
    root = directory.resolve()
    loaded = []
    for rel in rels:
        folder = directory / rel
        try:
            where = folder.resolve()
        except (OSError, RuntimeError, ValueError):  # a link loop, a NUL in the name
            where = root
        if where == root or not where.is_relative_to(root):
            raise OrcaInputError(
                f"{path}: member {rel!r} lies outside the ensemble folder: save the ensemble again"
            )
        _refuse_nested(folder)
        member = load_single(folder, device)
        _check_same_task(folder, member.meta["task"], path, meta["task"])
        loaded.append(member)
    return SavedEnsemble(loaded, weights, meta)


def model_parts(directory: str | Path) -> list[tuple[Path, float]]:
    """The model folders a saved folder predicts with, and their weights: the members of an
    ensemble folder, or the folder itself with weight 1 (to build an ensemble of ensembles
    as one flat ensemble)."""
    directory = Path(directory)
    if not (directory / ENSEMBLE_FILE).exists():
        read_meta(directory)  # refuses what is not a model folder
        return [(directory, 1.0)]
    path = directory / ENSEMBLE_FILE
    members, weights = _layout(read_json(path, "ensemble file"), path)
    return [(directory / m, w) for m, w in zip(members, weights, strict=True)]


def normalised_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """One non-negative weight per member, scaled to sum 1 (equal weights for None)."""
    if weights is None:
        return [1.0 / count] * count
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise OrcaInputError(f"ensemble weights {weights!r} are not numbers: give one number "
                             "per member") from None
    if w.ndim != 1 or len(w) != count:
        raise OrcaInputError(f"{w.size} ensemble weights for {count} members: give one weight "
                             "per member")
    if not np.isfinite(w).all() or (w < 0).any():
        raise OrcaInputError(f"ensemble weights {w.tolist()} must be finite and non-negative")
    if w.sum() == 0:
        raise OrcaInputError("ensemble weights are all zero: give at least one member a "
                             "positive weight")
    return (w / w.sum()).tolist()


def _member_meta(folder: Path) -> dict[str, Any]:
    _refuse_nested(folder)
    return read_meta(folder)


def _refuse_nested(folder: Path) -> None:
    if (folder / ENSEMBLE_FILE).exists():
        raise OrcaInputError(f"ensemble member {folder} is itself an ensemble: give its member "
                             "model folders instead")


def _check_same_task(folder: Path, task: dict[str, Any], other: Path,
                     other_task: dict[str, Any]) -> None:
    mine, theirs = _task_identity(task), _task_identity(other_task)
    differ = [what for what in mine if mine[what] != theirs[what]]
    if differ:
        raise OrcaInputError(
            f"ensemble members were made for different tasks: {folder} differs from {other} "
            f"in {', '.join(differ)}: ensemble models of one task"
        )


def _task_identity(task: dict[str, Any]) -> dict[str, object]:
    """What members of one ensemble share: the same data (any fold of it; folders saved
    before the data fingerprint existed compare their task fingerprint), type and shapes."""
    return {
        "data": task.get("data_fingerprint", task.get("fingerprint")),
        "task type": task.get("task_type"),
        "input shape": task.get("input_shape"),
        "output shape": task.get("output_shape"),
    }


def _check_replaceable(directory: Path) -> None:
    """Refuse to replace anything but an empty folder, a model folder or an ensemble folder."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise OrcaInputError(f"{directory} is a file: give a folder path for the ensemble")
    known = ((directory / ENSEMBLE_FILE).is_file() or (directory / "meta.json").is_file()
             or not any(directory.iterdir()))
    if not known:
        raise OrcaInputError(f"{directory} holds files that are not a saved model or ensemble: "
                             "give a new folder path or empty it first")


def _summed_cost(metas: list[dict[str, Any]]) -> float | None:
    """The members' summed inference cost (every member runs on every sample); None when a
    member's cost is unknown."""
    total = 0.0
    for meta in metas:
        cost = (meta.get("scores") or {}).get("gflops_per_sample")
        if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
            return None
        total += cost
    return total


def _layout(meta: object, path: Path) -> tuple[list[str], list[float]]:
    """The member paths and weights of an ensemble.json, checked."""
    problem = None
    if not isinstance(meta, dict):
        problem = "not a JSON object"
    elif meta.get("format_version") != FORMAT_VERSION:
        problem = f"format_version {meta.get('format_version')!r}, this version reads {FORMAT_VERSION}"
    elif not isinstance(meta.get("task"), dict):
        problem = "no task block"
    elif (not isinstance(meta.get("members"), list) or not meta["members"]
          or not all(isinstance(m, str) for m in meta["members"])):
        problem = "members must be a non-empty list of folder paths"
    if problem:
        raise OrcaInputError(f"{path} is not a valid ensemble file ({problem}): save the "
                             "ensemble again")
    assert isinstance(meta, dict)
    with fields_of(path):
        check_task_block(meta["task"])
    return meta["members"], normalised_weights(meta.get("weights"), len(meta["members"]))
