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

The folder is untrusted data like a network's: meta.json's baseline block and every array of
baseline.npz are checked (real numbers, shapes that fit the task block and each other, labels
valid for the task type) before the refit, and a refit that still fails on the saved data is
bad input, one line like any other.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from orca_automl.baselines._registry import BASELINES, BaselineResult
from orca_automl.cycle._meta import AGAIN, FORMAT_VERSION, fields_of, first_line, require
from orca_automl.cycle._saved import BASELINE_FILE, SavedPredictor, atomic_folder, task_block
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import check_seed, real_array
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
    """Refit the baseline saved in `directory` (meta.json already read and its task block
    checked, see `cycle._saved.read_meta`) and check it predicts its validation rows as when
    it was saved."""
    meta_path = directory / "meta.json"
    block = meta["baseline"]
    with fields_of(meta_path):
        require(isinstance(block, dict), "baseline", "a JSON object")
        require(isinstance(block.get("versions", {}), dict), "baseline.versions",
                "a JSON object")
    name = block.get("name")
    if not isinstance(name, str) or name not in BASELINES:
        raise OrcaInputError(
            f"{directory} holds baseline {name!r}, which is not registered here: load the "
            "plugin that registers it with --plugin, or use a folder saved by this version"
        )
    seed = check_seed(block.get("seed", 0), f"{meta_path}: baseline.seed")
    t = meta["task"]
    info = BASELINES.info(name)
    if t["modality"] not in info.modalities or t["task_type"] not in info.task_types:
        raise OrcaInputError(f"{meta_path}: baseline {name!r} does not apply to "
                             f"{t['modality']} {t['task_type']} tasks: {AGAIN}")
    arrays = _read_arrays(directory / BASELINE_FILE, t)
    normalizer = Normalizer.from_dict(t["normalizer"])
    train = Split(arrays["train_X"], arrays["train_y"])
    val = Split(arrays["val_X"], arrays["val_y"])
    task = Task(name=t["name"], task_type=t["task_type"], modality=t["modality"], train=train,
                val=val, test=val, num_outputs=t["num_outputs"], normalizer=normalizer,
                class_names=tuple(t["class_names"]) if t.get("class_names") else None)
    try:
        fitted = BASELINES.get(name)(task, seed)
        got = np.asarray(fitted.predict(val.X))
    except OrcaInputError:
        raise
    except Exception as exc:  # the data passed every check; a fit that fails on it is its own
        raise OrcaInputError(
            f"{directory}: baseline {name!r} cannot be refitted on its saved data "
            f"({type(exc).__name__}: {first_line(exc)}): {AGAIN}") from None
    _check_refit(directory, block, got, arrays["val_predictions"])
    return SavedBaseline(meta, normalizer, fitted.predict)


def _read_arrays(path: Path, t: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of baseline.npz, real numbers in the shapes and ranges task block `t` says,
    as the types the baselines fit on."""
    try:
        if not zipfile.is_zipfile(path):  # np.load would read it as a lone array or a pickle
            raise ValueError("not an .npz archive of arrays")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ARRAYS}
    except (KeyError, ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
        raise OrcaInputError(f"{path} is not a saved baseline's data ({first_line(exc)}): "
                             f"{AGAIN}") from None
    with np.errstate(over="ignore"):  # beyond float32: infinite, refused below
        floats = {key: real_array(a, f"{path}: array {key}").astype(np.float32)
                  for key, a in arrays.items()}
    task_type, shape, out = t["task_type"], tuple(t["input_shape"]), tuple(t["output_shape"])
    targets = () if task_type == "classification" else out
    rows = {split: len(floats[f"{split}_X"]) for split in ("train", "val")}
    expected = {"train_X": (rows["train"], *shape), "val_X": (rows["val"], *shape),
                "train_y": (rows["train"], *targets), "val_y": (rows["val"], *targets),
                "val_predictions": (rows["val"], *out)}
    with fields_of(path):
        for key, want in expected.items():
            found = floats[key]
            require(found.shape == want and want[0] > 0 and bool(np.isfinite(found).all()),
                    key, f"finite numbers of shape {want}")
        for key in ("train_y", "val_y"):
            y = floats[key]
            if task_type == "classification":
                require(bool(((y >= 0) & (y < t["num_outputs"]) & (y == np.round(y))).all()),
                        key, f"class indices from 0 to {t['num_outputs'] - 1}")
                floats[key] = y.astype(np.int64)
            elif task_type == "multilabel":
                require(bool(np.isin(y, (0, 1)).all()), key, "labels of 0 or 1")
    return floats


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
