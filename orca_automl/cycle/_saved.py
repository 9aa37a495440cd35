"""Saved model folders: what `orca-train` and the search's winners write, and `orca-predict`
loads.

A folder holds config.yaml (the run's configuration), meta.json (task shape and type,
normalisation statistics, class names, scores, notes such as random weights), model.pt (the
state_dict) and backbone/ with whatever the backbone's `save_architecture` writes (an HF
encoder's config; nothing for timm models, rebuilt by name), so loading never needs a hub or
the original weights. Writes go to a temporary folder renamed into place: an
interrupted save leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orca_automl.config import OrcaConfig
from orca_automl.cycle._model import OrcaModel, build_model
from orca_automl.cycle._refine import predict
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Normalizer, Split, Task

FORMAT_VERSION = 1


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
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        name, args = model.backbone.save_architecture(tmp / "backbone")
        rebuild = dataclasses.replace(
            config.model, backbone=name, backbone_args=args, pretrained=False
        )
        config.to_yaml(tmp / "config.yaml")
        meta = {
            "format_version": FORMAT_VERSION,
            "task": {
                "name": task.name,
                "task_type": task.task_type,
                "modality": task.modality,
                "input_shape": list(task.input_shape),
                "output_shape": list(task.output_shape),
                "num_outputs": task.num_outputs,
                "class_names": list(task.class_names) if task.class_names else None,
                "normalizer": task.normalizer.to_dict(),
                "fingerprint": task.fingerprint(),
            },
            "rebuild": dataclasses.asdict(rebuild),
            "scores": scores or {},
            "notes": notes or [],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        torch.save(model.state_dict(), tmp / "model.pt")
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


@dataclasses.dataclass
class SavedModel:
    """A loaded model folder that predicts on raw (unnormalised) inputs."""

    model: OrcaModel
    meta: dict[str, Any]
    config: OrcaConfig
    normalizer: Normalizer

    @property
    def task_type(self) -> str:
        return str(self.meta["task"]["task_type"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["task"]["input_shape"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices (classification), 0/1 matrix (multilabel), or values in the
        task's units (regression, dense)."""
        out = self.predict_raw(X)
        if self.task_type == "classification":
            return out.argmax(axis=1)
        if self.task_type == "multilabel":
            return (out > 0).astype(np.int64)
        return self.normalizer.denormalize_y(out)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = torch.from_numpy(self.predict_raw(X))
        if self.task_type == "classification":
            return out.softmax(dim=1).numpy()
        if self.task_type == "multilabel":
            return out.sigmoid().numpy()
        raise OrcaInputError(f"probabilities exist for classification tasks, not {self.task_type}")

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1:] != self.input_shape:
            raise OrcaInputError(
                f"inputs have per-sample shape {X.shape[1:]}, the model expects "
                f"{self.input_shape}: give samples shaped like the training data"
            )
        if not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).reshape(len(X), -1).any(axis=1).sum())
            raise OrcaInputError(f"{bad} input samples contain NaN or infinity: clean them first")
        device = next(self.model.parameters()).device
        return predict(self.model, self.normalizer.normalize_x(X), device)


def load_model(directory: str | Path, device: str | None = None) -> SavedModel:
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file() or not (directory / "model.pt").is_file():
        raise OrcaInputError(
            f"{directory} is not a saved model folder (no meta.json/model.pt): give a folder "
            "written by orca-train or orca-search"
        )
    meta = json.loads(meta_path.read_text())
    config = OrcaConfig.from_yaml(directory / "config.yaml")
    rebuild = dict(meta["rebuild"])
    if rebuild["backbone"] == "hf":
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
    model.load_state_dict(state)
    dev = torch.device(device) if device else torch.device("cpu")
    model.to(dev).eval()
    return SavedModel(model, meta, config, normalizer)
