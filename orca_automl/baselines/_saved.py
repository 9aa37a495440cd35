"""Saved baselines: a fitted reference method as a model folder that `orca-predict` serves,
without pickle.

A fitted scikit-learn or sktime estimator can only be stored whole by pickling it, and
loading a pickle runs whatever it names. So a baseline is saved as its recipe and its data,
and refitted when loaded: the registered name, the seed and the hyperparameters it chose in
meta.json (beside the same task block as a network's folder), and in baseline.npz (read with
allow_pickle=False) the training and validation rows it was fitted and tuned on, plus its
predictions on those validation rows. A baseline fits deterministically given its data and
seed, so the refitted model is the one the search scored; loading checks that it predicts the
stored validation rows as saved, and refuses with one line when it does not (another
scikit-learn, say). Refitting costs the baseline's fit time (seconds on the small data where
baselines win) at every load.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from orca_automl.baselines._registry import BASELINES, BaselineResult
from orca_automl.cycle._saved import (
    BASELINE_FILE,
    FORMAT_VERSION,
    SavedPredictor,
    atomic_folder,
    task_block,
)
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Normalizer, Split, Task

#: The arrays of baseline.npz.
ARRAYS = ("train_X", "train_y", "val_X", "val_y", "val_predictions")
#: Libraries whose versions decide whether a refit reproduces the saved baseline.
LIBRARIES = ("numpy", "scikit-learn", "sktime")


def save_baseline(
    result: BaselineResult,
    task: Task,
    seed: int,
    directory: str | Path,
    scores: dict[str, object] | None = None,
) -> Path:
    """Write the folder of baseline `result`, fitted on `task` (its training split, tuned on
    its validation split) with `seed`; replaces an older folder at `directory` atomically."""
    directory = Path(directory)
    info = BASELINES.info(result.name)
    meta = {
        "format_version": FORMAT_VERSION,
        "task": task_block(task),
        "baseline": {"name": result.name, "display_name": info.display_name, "seed": seed,
                     "params": dict(result.params), "versions": _versions()},
        # not measured: a baseline's cost is not the network's GFLOPs
        "scores": {"gflops_per_sample": None, **(scores or {})},
        "notes": [f"a reference baseline ({info.display_name}), refitted from its data when "
                  "loaded"],
    }
    with atomic_folder(directory) as tmp:
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        np.savez_compressed(tmp / BASELINE_FILE, train_X=task.train.X, train_y=task.train.y,
                            val_X=task.val.X, val_y=task.val.y,
                            val_predictions=np.asarray(result.val))
    return directory


@dataclasses.dataclass
class SavedBaseline(SavedPredictor):
    """A loaded baseline folder: the refitted baseline, predicting raw inputs."""

    meta: dict[str, Any]
    normalizer: Normalizer
    predict_normalised: Callable[[np.ndarray], np.ndarray]

    def _predictions(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_normalised(self.normalizer.normalize_x(X)))


def load_baseline(directory: Path, meta: dict[str, Any]) -> SavedBaseline:
    """Refit the baseline saved in `directory` (meta.json already read) and check it predicts
    its validation rows as when it was saved."""
    block = meta["baseline"]
    name = block.get("name") if isinstance(block, dict) else None
    if not isinstance(name, str) or name not in BASELINES:
        raise OrcaInputError(
            f"{directory} holds baseline {name!r}, which is not registered here: load the "
            "plugin that registers it with --plugin, or use a folder saved by this version"
        )
    try:
        with np.load(directory / BASELINE_FILE, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ARRAYS}
    except (KeyError, ValueError, OSError) as exc:
        raise OrcaInputError(f"{directory / BASELINE_FILE} is not a saved baseline's data "
                             f"({exc}): save the model again") from None
    t = meta["task"]
    normalizer = Normalizer.from_dict(t["normalizer"])
    train = Split(arrays["train_X"], arrays["train_y"])
    val = Split(arrays["val_X"], arrays["val_y"])
    task = Task(name=t["name"], task_type=t["task_type"], modality=t["modality"], train=train,
                val=val, test=val, num_outputs=t["num_outputs"], normalizer=normalizer,
                class_names=tuple(t["class_names"]) if t.get("class_names") else None)
    fitted = BASELINES.get(name)(task, int(block.get("seed", 0)))
    _check_refit(directory, block, np.asarray(fitted.predict(val.X)), arrays["val_predictions"])
    return SavedBaseline(meta, normalizer, fitted.predict)


def _check_refit(directory: Path, block: dict[str, Any], got: np.ndarray,
                 saved: np.ndarray) -> None:
    """One clear line when the refitted baseline is not the saved one."""
    if got.shape != saved.shape:
        differ = len(saved)
    else:
        close = np.isclose(got, saved, rtol=1e-4, atol=1e-6).reshape(len(saved), -1)
        differ = int((~close).any(axis=1).sum())
    if differ == 0:
        return
    then, now = block.get("versions", {}), _versions()
    changed = ", ".join(f"{lib} {then.get(lib)} then, {now.get(lib)} now" for lib in LIBRARIES
                        if then.get(lib) != now.get(lib)) or "the same library versions"
    raise OrcaInputError(
        f"{directory}: the baseline refitted here predicts {differ} of its {len(saved)} "
        f"validation samples differently from when it was saved ({changed}): load it where "
        "it was saved, or run the search again"
    )


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for library in LIBRARIES:
        try:
            found[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            found[library] = None
    return found
