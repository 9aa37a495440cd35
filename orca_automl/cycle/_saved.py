"""Saved model folders: what `orca-train` and the search's winners write, and `orca-predict`
loads.

A folder holds config.yaml (the run's configuration), meta.json (task shape and type,
normalisation statistics, class names, scores, notes such as random weights), model.pt (the
state_dict) and backbone/ with whatever the backbone's `save_architecture` writes (an HF
encoder's config; nothing for timm models, rebuilt by name), so loading never needs a hub or
the original weights. Writes go to a temporary folder renamed into place: an
interrupted save leaves nothing half-written.

`load_model` also serves ensemble folders (see `_ensemble.py`) and saved baselines (see
`baselines/_saved.py`); all predict through `SavedPredictor`, so callers never tell them
apart.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orca_automl.backbones import refuse_remote_code
from orca_automl.config import OrcaConfig
from orca_automl.cycle._model import OrcaModel, build_model
from orca_automl.cycle._refine import predict
from orca_automl.cycle._scope import add_lora, frozen_base_keys, has_lora
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Normalizer, Split, Task, to_predictions

FORMAT_VERSION = 1
ENSEMBLE_FILE = "ensemble.json"
BASELINE_FILE = "baseline.npz"  # a baseline's data in place of model.pt (see baselines/_saved.py)


def save_model(
    model: OrcaModel,
    task: Task,
    config: OrcaConfig,
    directory: str | Path,
    scores: dict[str, object] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write the model folder at `directory` (replacing an older one atomically)."""
    directory = Path(directory)
    state = model.state_dict()
    adapters = None
    if has_lora(model):  # the pretrained body rebuilds the base weights; keep the rest
        base = frozen_base_keys(model)
        state = {k: v for k, v in state.items() if k not in base}
        adapters = {"kind": "lora", "rank": config.refine.lora_rank,
                    "alpha": config.refine.lora_alpha, "base": model.backbone.identity}
    with atomic_folder(directory) as tmp:
        name, args = model.backbone.save_architecture(tmp / "backbone")
        rebuild = (dataclasses.replace(config.model, pretrained=True) if adapters is not None
                   else dataclasses.replace(config.model, backbone=name, backbone_args=args,
                                            pretrained=False))
        config.to_yaml(tmp / "config.yaml")
        meta = {
            "format_version": FORMAT_VERSION,
            "task": task_block(task),
            "rebuild": dataclasses.asdict(rebuild),
            "adapters": adapters,
            "scores": scores or {},
            "notes": notes or [],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        torch.save(state, tmp / "model.pt")
    return directory


def task_block(task: Task) -> dict[str, Any]:
    """What a saved folder's meta.json records of its task: enough to check inputs, turn
    predictions into classes or units, and tell which data its model was made from."""
    return {
        "name": task.name,
        "task_type": task.task_type,
        "modality": task.modality,
        "input_shape": list(task.input_shape),
        "output_shape": list(task.output_shape),
        "num_outputs": task.num_outputs,
        "class_names": list(task.class_names) if task.class_names else None,
        "normalizer": task.normalizer.to_dict(),
        "fingerprint": task.fingerprint(),
        "data_fingerprint": data_fingerprint(task),
    }


def data_fingerprint(task: Task) -> str:
    """sha256 over the task's type and the rows of its development and test data, in any
    order.

    Unlike `Task.fingerprint` it is the same for every cross-validation fold of a task (a
    fold only moves rows between training and validation), so the fold models of one task
    can form a bag while models of other data cannot.
    """
    h = hashlib.sha256(f"{task.task_type}|{task.modality}|{task.num_outputs}".encode())
    for split in (task.development, task.test):
        X = np.ascontiguousarray(split.X).reshape(len(split.X), -1)
        y = np.ascontiguousarray(split.y).reshape(len(split.y), -1)
        h.update(str((X.dtype.str, X.shape, y.dtype.str, y.shape)).encode())
        for row in sorted(hashlib.sha256(x.tobytes() + t.tobytes()).digest()
                          for x, t in zip(X, y, strict=True)):
            h.update(row)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_folder(directory: Path) -> Iterator[Path]:
    """A temporary folder next to `directory` that replaces it when the block succeeds and
    vanishes when it fails, so an interrupted save leaves nothing half-written."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        yield tmp
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class SavedPredictor(abc.ABC):
    """What a loaded model folder and a loaded ensemble folder share: the input checks and
    the step from predictions (`tasks.to_predictions` form) to classes, labels or values."""

    meta: dict[str, Any]

    @property
    def task_type(self) -> str:
        return str(self.meta["task"]["task_type"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["task"]["input_shape"])

    def predictions(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (classification), label probabilities (multilabel), or values
        in the task's units (regression, dense): the form ensembles average."""
        return self._predictions(self._checked(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices (classification), 0/1 matrix (multilabel), or values in the
        task's units (regression, dense)."""
        out = self.predictions(X)
        if self.task_type == "classification":
            return out.argmax(axis=1)
        if self.task_type == "multilabel":
            return (out > 0.5).astype(np.int64)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class or label probabilities as float32, one row per sample."""
        if self.task_type not in ("classification", "multilabel"):
            raise OrcaInputError(
                f"probabilities exist for classification tasks, not {self.task_type}"
            )
        return self.predictions(X).astype(np.float32)

    def _checked(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1:] != self.input_shape:
            raise OrcaInputError(
                f"inputs have per-sample shape {X.shape[1:]}, the model expects "
                f"{self.input_shape}: give samples shaped like the training data"
            )
        if len(X) == 0:
            raise OrcaInputError("the inputs hold no samples: give at least one")
        if not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).reshape(len(X), -1).any(axis=1).sum())
            raise OrcaInputError(f"{bad} input samples contain NaN or infinity: clean them first")
        return X

    @abc.abstractmethod
    def _predictions(self, X: np.ndarray) -> np.ndarray:
        """`predictions` for inputs that passed `_checked`."""


@dataclasses.dataclass
class SavedModel(SavedPredictor):
    """A loaded model folder that predicts on raw (unnormalised) inputs."""

    model: OrcaModel
    meta: dict[str, Any]
    config: OrcaConfig
    normalizer: Normalizer

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs: logits, or normalised regression/dense values."""
        return self._raw(self._checked(X))

    def _predictions(self, X: np.ndarray) -> np.ndarray:
        return to_predictions(self.task_type, self.normalizer, self._raw(X))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device
        return predict(self.model, self.normalizer.normalize_x(X), device)


def load_model(directory: str | Path, device: str | None = None) -> SavedPredictor:
    """A model folder as a `SavedModel`, a saved baseline as a `SavedBaseline`, an ensemble
    folder (ensemble.json) as a `SavedEnsemble`; all predict the same way."""
    directory = Path(directory)
    if (directory / ENSEMBLE_FILE).is_file():
        from orca_automl.cycle._ensemble import load_ensemble  # that module builds on this one

        return load_ensemble(directory, device)
    return load_single(directory, device)


def read_meta(directory: Path) -> dict[str, Any]:
    """meta.json of a model folder; one clear line when `directory` is not one."""
    meta_path = directory / "meta.json"
    weights = [directory / "model.pt", directory / BASELINE_FILE]
    if not meta_path.is_file() or not any(w.is_file() for w in weights):
        raise OrcaInputError(
            f"{directory} is not a saved model folder (no meta.json/model.pt): give a folder "
            "written by orca-train or orca-search"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:  # bad JSON or bad UTF-8
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("task"), dict):
        raise OrcaInputError(f"{meta_path} is not valid model metadata: save the model again")
    return meta


def _add_saved_adapters(model: OrcaModel, adapters: dict[str, Any], directory: Path) -> None:
    """LoRA folders keep only the adapters: the pretrained body they adapt must be the one
    they were trained on."""
    if adapters.get("kind") != "lora":
        raise OrcaInputError(f"{directory}: unknown adapter kind {adapters.get('kind')!r}")
    if model.backbone.identity != adapters.get("base"):
        raise OrcaInputError(
            f"{directory} holds LoRA adapters for {adapters.get('base')}, but the backbone "
            f"loads as {model.backbone.identity}: make its pretrained weights available"
        )
    add_lora(model, int(adapters["rank"]), int(adapters["alpha"]))


def load_single(directory: Path, device: str | None = None) -> SavedPredictor:
    """One model folder (not an ensemble) as a `SavedModel`, or a saved baseline as a
    `SavedBaseline`: data only (JSON, YAML through safe_load, weights_only tensors, arrays
    without pickle); a folder asking to run its own code is refused."""
    meta = read_meta(directory)
    if "baseline" in meta:
        from orca_automl.baselines._saved import load_baseline  # scikit-learn, not torch

        return load_baseline(directory, meta)
    return _load_network(directory, meta, device)


def _load_network(directory: Path, meta: dict[str, Any], device: str | None) -> SavedModel:
    """A model folder written by `save_model`."""
    for folder in (directory, directory / "backbone"):
        refuse_remote_code(folder)
    config = OrcaConfig.from_yaml(directory / "config.yaml")
    rebuild = dict(meta["rebuild"])
    adapters = meta.get("adapters")
    if rebuild["backbone"] == "hf" and not adapters:
        rebuild["backbone_args"] = {
            **rebuild["backbone_args"], "name_or_path": str(directory / "backbone")
        }
    model_config = type(config.model)(**rebuild)
    t = meta["task"]
    normalizer = Normalizer.from_dict(t["normalizer"])
    shape = tuple(t["input_shape"])
    dummy = Split(np.zeros((1, *shape), np.float32), np.zeros((1,), np.int64))
    if t["task_type"] == "dense":
        dummy = Split(dummy.X, np.zeros((1, *t["output_shape"]), np.float32))
    skeleton = Task(
        name=t["name"], task_type=t["task_type"], modality=t["modality"], train=dummy,
        val=dummy, test=dummy, num_outputs=t["num_outputs"], normalizer=normalizer,
    )
    model = build_model(skeleton, model_config, config.seed)
    state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    if adapters:
        _add_saved_adapters(model, adapters, directory)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - frozen_base_keys(model):
            raise OrcaInputError(f"{directory}/model.pt does not fit its LoRA model: save it again")
    else:
        model.load_state_dict(state)
    dev = torch.device(device) if device else torch.device("cpu")
    model.to(dev).eval()
    return SavedModel(model, meta, config, normalizer)
