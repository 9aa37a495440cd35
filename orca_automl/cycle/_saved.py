"""Saved model folders: what `orca-train` and the search's winners write, and `orca-predict`
loads.

A folder holds config.yaml (the run's configuration), meta.json (task shape and type,
normalisation statistics, class names, a table's column encoding, scores, notes such as
random weights), model.pt (the state_dict) and backbone/ with whatever the backbone's
`save_architecture` writes (an HF encoder's config; nothing for timm models, rebuilt by
name), so loading never needs a hub or the original weights. Writes go to a temporary folder
renamed into place: an interrupted save leaves nothing half-written.

A folder is loaded as untrusted data: every file in it must be a regular file (a named pipe
would block its reader), meta.json is checked field by field before anything is built
(`_meta.check_meta`), model.pt must hold tensors with exactly the names and shapes of the model
meta.json describes, and that model must run on one input of the recorded shape. Each
failure is one `OrcaInputError` line naming the file and the field at fault.

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
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from orca_automl.backbones import refuse_remote_code
from orca_automl.config import OrcaConfig
from orca_automl.cycle._meta import (
    AGAIN,
    FORMAT_VERSION,
    check_meta,
    first_line,
    read_json,
    rebuild_config,
)
from orca_automl.cycle._model import OrcaModel, build_model
from orca_automl.cycle._refine import predict
from orca_automl.cycle._scope import add_lora, frozen_base_keys, has_lora
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import load_yaml, read_text, real_array, regular_file, resolve_device
from orca_automl.tasks import (
    Normalizer,
    Split,
    TableEncoding,
    Task,
    to_predictions,
)

if TYPE_CHECKING:  # pandas loads only when a table is read
    import pandas as pd

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
    """What a saved folder's meta.json records of its task: enough to check inputs, encode a
    table's raw rows as in training, turn predictions into classes or units, and tell which
    data its model was made from."""
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
        # a table's columns by name, numeric or one-hot (see tasks.TableEncoding); else None
        "table_encoding": task.extras.get("table_encoding"),
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

    def table_features(self, frame: pd.DataFrame, source: str = "the table") -> np.ndarray:
        """The inputs of raw table rows (`source` names the table in errors).

        A model trained on a table encodes the columns it was trained on, by name, as in
        training: extra columns (the target, say) are ignored, categories unseen in training
        encode as zeros. Other models take the numeric columns as they are.

        Example:
            >>> saved = load_model("models/churn")                         # doctest: +SKIP
            >>> saved.predict(saved.table_features(pd.read_csv("new.csv")))  # doctest: +SKIP
        """
        encoding = self.meta["task"].get("table_encoding")
        if encoding is None:
            return numeric_columns(frame, source)
        table = TableEncoding.from_dict(encoding)
        missing = [name for name in table.columns if name not in frame.columns]
        if missing:
            raise OrcaInputError(
                f"{source}: no columns {missing}, which the model was trained on: give its "
                "input columns by name (other columns, such as the target, are ignored)"
            )
        return table.transform(frame, source=source)

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
        try:
            X = np.asarray(X)
        except ValueError:  # ragged nested lists
            raise OrcaInputError("the inputs are not an array of equal-length samples: give "
                                 "samples shaped like the training data") from None
        X = _float32(real_array(X, "the inputs"))
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


def numeric_columns(frame: pd.DataFrame, source: str) -> np.ndarray:
    """A table's columns as float32 features, when all hold real numbers."""
    numeric = frame.select_dtypes("number")
    if numeric.shape[1] != frame.shape[1]:
        text = [str(name) for name in frame.columns if name not in numeric.columns]
        raise OrcaInputError(f"{source}: non-numeric columns {text[:5]}; give the numeric "
                             "features only")
    return _float32(real_array(frame.to_numpy(), source))


def _float32(X: np.ndarray) -> np.ndarray:
    """X as float32; values beyond its range become infinite, which the input checks refuse."""
    with np.errstate(over="ignore"):
        return X.astype(np.float32)


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
    folder (ensemble.json) as a `SavedEnsemble`; all predict the same way. `device` (cpu
    when None) must exist on this machine."""
    resolved = resolve_device(device)
    directory = Path(directory)
    if (directory / ENSEMBLE_FILE).exists():  # a pipe there is refused, not read
        from orca_automl.cycle._ensemble import load_ensemble  # that module builds on this one

        return load_ensemble(directory, resolved)
    return load_single(directory, resolved)


def load_single(directory: Path, device: torch.device) -> SavedPredictor:
    """One model folder (not an ensemble) as a `SavedModel`, or a saved baseline as a
    `SavedBaseline`: data only (JSON, YAML through safe_load, weights_only tensors, arrays
    without pickle); a folder asking to run its own code is refused."""
    meta = read_meta(directory)
    if "baseline" in meta:
        from orca_automl.baselines._saved import load_baseline  # scikit-learn, not torch

        return load_baseline(directory, meta)
    return _load_network(directory, meta, device)


def read_meta(directory: Path) -> dict[str, Any]:
    """meta.json of a model folder, checked (`check_meta`); one clear line when `directory`
    is not a model folder or holds something other than regular files and folders."""
    meta_path = directory / "meta.json"
    if not directory.is_dir() or not meta_path.exists():
        raise OrcaInputError(
            f"{directory} is not a saved model folder (no meta.json/model.pt): give a folder "
            "written by orca-train or orca-search"
        )
    for path in sorted(directory.rglob("*")):  # links to folders are not followed
        if not (path.is_dir() or path.is_file()):
            regular_file(path, "model folder entry", "remove it, or save the model again")
    meta = check_meta(read_json(meta_path, "model metadata file"), meta_path)
    weights = BASELINE_FILE if "baseline" in meta else "model.pt"
    regular_file(directory / weights, "model weights file", AGAIN)
    return meta


def _load_network(directory: Path, meta: dict[str, Any], device: torch.device) -> SavedModel:
    """A model folder written by `save_model` (meta.json checked by `read_meta`)."""
    for folder in (directory, directory / "backbone"):
        refuse_remote_code(folder)
    weights = directory / "model.pt"
    state = _read_weights(weights)
    config = _read_config(directory / "config.yaml")
    model_config = rebuild_config(meta["rebuild"])
    adapters = meta.get("adapters")
    if model_config.backbone == "hf" and not adapters:
        model_config = dataclasses.replace(model_config, backbone_args={
            **model_config.backbone_args, "name_or_path": str(directory / "backbone")})
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
    meta_path = directory / "meta.json"
    try:
        model = build_model(skeleton, model_config, config.seed)
    except OrcaInputError as exc:  # its words may quote the file's (a key with a newline)
        raise OrcaInputError(f"{meta_path}: {' '.join(str(exc).split())}") from None
    except (TypeError, ValueError, RuntimeError, OSError) as exc:
        raise OrcaInputError(f"{meta_path}: the model it describes cannot be built "
                             f"({type(exc).__name__}: {first_line(exc)}): {AGAIN}") from None
    if adapters:
        _add_saved_adapters(model, adapters, directory)
    optional = frozen_base_keys(model) if adapters else set()  # rebuilt from pretrained weights
    _check_weights(weights, state, model.state_dict(), optional)
    model.load_state_dict(state, strict=not adapters)
    model.to(device).eval()
    _check_runs(model, t, device, meta_path)
    return SavedModel(model, meta, config, normalizer)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """model.pt as a mapping of names to tensors, loaded as data (weights_only): a pickle that
    names anything else (code included) is refused, never run."""
    regular_file(path, "model weights file", AGAIN)
    try:
        with warnings.catch_warnings():  # the weights-only unpickler's notes on odd files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or hostile file fails in many ways, all the file's
        raise OrcaInputError(
            f"{path} cannot be loaded as tensors ({type(exc).__name__}): it is damaged or "
            f"holds other objects, which are never unpickled: {AGAIN}"
        ) from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise OrcaInputError(f"{path} does not hold a mapping of names to tensors: {AGAIN}")
    return state


def _check_weights(path: Path, state: dict[str, torch.Tensor],
                   needed: dict[str, torch.Tensor], optional: set[str]) -> None:
    """One line unless `state` holds every tensor of `needed` (but `optional`), each of its
    name, shape and type, and nothing else."""
    for name, tensor in state.items():
        want = needed.get(name)
        if want is None:
            raise OrcaInputError(f"{path} holds {name}, which the model built from meta.json "
                                 f"does not have: {AGAIN}")
        if (tensor.shape != want.shape or tensor.dtype != want.dtype
                or tensor.layout != want.layout):
            raise OrcaInputError(
                f"{path} holds {name} of shape {tuple(tensor.shape)} ({_kind(tensor)}), the "
                f"model built from meta.json needs {tuple(want.shape)} ({_kind(want)}): {AGAIN}"
            )
    missing = sorted(set(needed) - set(state) - optional)
    if missing:
        raise OrcaInputError(f"{path} lacks {len(missing)} tensors of the model built from "
                             f"meta.json, e.g. {missing[0]}: {AGAIN}")


def _kind(tensor: torch.Tensor) -> str:
    kind = str(tensor.dtype).removeprefix("torch.")
    return kind if tensor.layout == torch.strided else f"{kind}, {tensor.layout}"


def _check_runs(model: OrcaModel, task: dict[str, Any], device: torch.device,
                meta_path: Path) -> None:
    """One zero sample through the model: shapes that fit the weights' names and shapes but
    not the network (a sequence too short, say) fail here, not at the first prediction."""
    x = torch.zeros((1, *task["input_shape"]), device=device)
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise OrcaInputError(
            f"{meta_path}: the model it describes cannot run on one input of shape "
            f"{tuple(task['input_shape'])} ({type(exc).__name__}): {AGAIN}") from None
    if tuple(out.shape) != (1, *task["output_shape"]):
        raise OrcaInputError(
            f"{meta_path}: the model it describes outputs shape {tuple(out.shape[1:])} per "
            f"sample, task.output_shape says {tuple(task['output_shape'])}: {AGAIN}")


def _read_config(path: Path) -> OrcaConfig:
    """config.yaml of a model folder."""
    data = load_yaml(read_text(path, "model config", AGAIN), f"model config {path}")
    try:
        return OrcaConfig.from_dict(data)
    except OrcaInputError as exc:
        raise OrcaInputError(f"model config {path}: {exc}") from None


def _add_saved_adapters(model: OrcaModel, adapters: dict[str, Any], directory: Path) -> None:
    """LoRA folders keep only the adapters: the pretrained body they adapt must be the one
    they were trained on."""
    if model.backbone.identity != adapters["base"]:
        raise OrcaInputError(
            f"{directory} holds LoRA adapters for {adapters['base']}, but the backbone "
            f"loads as {model.backbone.identity}: make its pretrained weights available"
        )
    add_lora(model, adapters["rank"], adapters["alpha"])
