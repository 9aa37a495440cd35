"""meta.json of a saved folder (a model, a baseline, an ensemble): read as data and checked
field by field before anything is built from it.

A folder is untrusted data: its shapes size the arrays and the model built on loading, its
statistics normalise every input. So every block is checked for its type, its range and its
agreement with the other blocks, and a failure is one `OrcaInputError` line naming the file
and the field at fault.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from orca_automl.config import ModelConfig, OrcaConfig
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import read_text
from orca_automl.tasks import MODALITIES, TASK_TYPES, Normalizer

FORMAT_VERSION = 1
#: The most values one input sample of a saved model may hold (16 MiB as float32, e.g. a
#: 4 x 1024 x 1024 image): meta.json's shapes size the arrays and the model built on loading.
MAX_SAMPLE_VALUES = 2**22
#: The most outputs (classes, labels, targets or channels) a saved model may have.
MAX_OUTPUTS = 100_000
#: How many numbers input_shape holds per modality: (features,), (channels, length),
#: (channels, height, width).
INPUT_DIMS = {"tabular": 1, "1d": 2, "2d": 3}
AGAIN = "save the model again"



class FieldError(Exception):
    """A field of a saved folder's JSON at fault; `fields_of` words it as one line."""


def require(ok: bool, field: str, want: str) -> None:
    """Refuse `field` (e.g. "task.num_outputs") unless `ok`; `want` says what it must be."""
    if not ok:
        raise FieldError(f"{field} must be {want}")


@contextlib.contextmanager
def fields_of(path: Path) -> Iterator[None]:
    """A `FieldError` raised in the block as one `OrcaInputError` line naming file `path`."""
    try:
        yield
    except FieldError as exc:
        raise OrcaInputError(f"{path}: {exc}: {AGAIN}") from None


def read_json(path: Path, what: str) -> Any:
    """The JSON value in regular UTF-8 file `path`; `what` names the file in errors."""
    text = read_text(path, what, AGAIN)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise OrcaInputError(f"{path} is not a valid {what} (bad JSON: {exc}): {AGAIN}") from None
    except RecursionError:
        raise OrcaInputError(f"{path} is not a valid {what} (its JSON nests too deeply): "
                             f"{AGAIN}") from None


def check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """`meta` (read from meta.json at `path`) when every block `save_model` or
    `baselines.save_baseline` writes is there, of its type and in range; one line naming
    the file and the field at fault otherwise."""
    with fields_of(path):
        require(isinstance(meta, dict), "its content", "a JSON object")
        version = meta.get("format_version")
        require(_whole(version) and version == FORMAT_VERSION, "format_version",
                f"{FORMAT_VERSION} (the format this version reads)")
        for block, kind in (("task", dict), ("scores", dict), ("notes", list)):
            require(isinstance(meta.get(block), kind), block,
                    "a JSON object" if kind is dict else "a list")
        require(all(isinstance(note, str) for note in meta["notes"]), "notes", "a list of strings")
        check_task_block(meta["task"])
        if "baseline" not in meta:  # baselines.load_baseline checks its block
            rebuild_config(meta.get("rebuild"))
            _check_adapters(meta.get("adapters"))
    return meta


def check_task_block(t: Any) -> None:
    """Raise `FieldError` unless `t` is a task block as `task_block` writes it: the types,
    shapes and statistics every loader builds from, consistent with each other and bounded."""
    require(isinstance(t, dict), "task", "a JSON object")
    require(isinstance(t.get("name"), str), "task.name", "a string")
    require(t.get("task_type") in TASK_TYPES, "task.task_type", f"one of {', '.join(TASK_TYPES)}")
    require(t.get("modality") in MODALITIES, "task.modality", f"one of {', '.join(MODALITIES)}")
    dims = INPUT_DIMS[t["modality"]]
    shape = t.get("input_shape")
    require(_shape(shape, 1) and len(shape) == dims, "task.input_shape",
            f"a list of {dims} positive whole numbers for a {t['modality']} task")
    size = math.prod(shape)
    require(size <= MAX_SAMPLE_VALUES, "task.input_shape",
            f"at most {MAX_SAMPLE_VALUES:,} values per sample, not {size:,}")
    outputs = t.get("num_outputs")
    require(_whole(outputs) and 1 <= outputs <= MAX_OUTPUTS, "task.num_outputs",
            f"a whole number from 1 to {MAX_OUTPUTS:,}")
    dense = t["task_type"] == "dense"
    expected = [outputs, *shape[1:]] if dense else [outputs]
    require(_shape(t.get("output_shape"), 0) and t["output_shape"] == expected,
            "task.output_shape", f"{expected} (num_outputs{', then input_shape[1:]' if dense else ''})")
    names = t.get("class_names")
    require(names is None or (isinstance(names, list) and len(names) == outputs
                              and all(isinstance(n, str) for n in names)),
            "task.class_names", f"null or a list of {outputs} strings")
    require(isinstance(t.get("fingerprint"), str), "task.fingerprint", "a string")
    require(isinstance(t.get("data_fingerprint", ""), str),  # older folders lack it
            "task.data_fingerprint", "a string")
    _check_normalizer(t.get("normalizer"), tuple(shape), tuple(expected))
    _check_encoding(t.get("table_encoding"), t["modality"], shape)


def rebuild_config(rebuild: Any) -> ModelConfig:
    """The model settings of meta.json's rebuild block; `FieldError` when it is none."""
    require(isinstance(rebuild, dict), "rebuild", "a JSON object of model settings")
    try:
        return OrcaConfig.from_dict({"model": rebuild}).model
    except (TypeError, ValueError) as exc:  # OrcaInputError included
        raise FieldError(f"rebuild does not describe a model ({' '.join(str(exc).split())})"
                         ) from None


def _whole(value: Any) -> bool:
    """A JSON whole number (not true or false)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(value: Any, low: int) -> bool:
    """A non-empty list of whole numbers of at least `low`."""
    return (isinstance(value, list) and len(value) > 0
            and all(_whole(v) and v >= low for v in value))


def _check_normalizer(d: Any, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> None:
    keys = ("x_mean", "x_std", "per_sample", "y_mean", "y_std")
    require(isinstance(d, dict) and all(k in d for k in keys), "task.normalizer",
            f"a JSON object with {', '.join(keys)}")
    require(isinstance(d["per_sample"], bool), "task.normalizer.per_sample", "true or false")
    require(d["x_mean"] is not None and d["x_std"] is not None, "task.normalizer.x_mean/x_std",
            "numbers, not null")
    require((d["y_mean"] is None) == (d["y_std"] is None), "task.normalizer.y_mean/y_std",
            "both null or both numbers")
    try:
        with np.errstate(all="ignore"):
            norm = Normalizer.from_dict(d)
    except (TypeError, ValueError):
        raise FieldError("task.normalizer must hold arrays of numbers") from None
    parts = {"x_mean": (norm.x_mean, input_shape), "x_std": (norm.x_std, input_shape),
             "y_mean": (norm.y_mean, output_shape), "y_std": (norm.y_std, output_shape)}
    for name, (values, onto) in parts.items():
        if values is None:
            continue
        require(_broadcasts(values.shape, onto) and bool(np.isfinite(values).all()),
                f"task.normalizer.{name}", f"finite numbers that broadcast against shape {onto}")
        if name.endswith("std"):
            require(bool((values > 0).all()), f"task.normalizer.{name}", "positive")


def _broadcasts(shape: tuple[int, ...], onto: tuple[int, ...]) -> bool:
    """Whether an array of `shape` broadcasts against one sample of shape `onto`, keeping it."""
    try:
        return np.broadcast_shapes(shape, onto) == onto
    except ValueError:
        return False


def _check_encoding(d: Any, modality: str, input_shape: list[int]) -> None:
    """A table's encoding (`TableEncoding.to_dict`): None, or names that make the inputs."""
    if d is None:
        return
    field = "task.table_encoding"
    require(isinstance(d, dict) and isinstance(d.get("numeric"), list)
            and isinstance(d.get("categorical"), dict), field,
            "null or a JSON object with a list numeric and an object categorical")
    require(all(isinstance(name, str) for name in d["numeric"])
            and all(isinstance(cats, list) and all(isinstance(c, str) for c in cats)
                    for cats in d["categorical"].values()), field,
            "column names, with the category names of each categorical column")
    require(modality == "tabular", field, f"null for a {modality} task")
    features = len(d["numeric"]) + sum(len(cats) for cats in d["categorical"].values())
    require([features] == input_shape, field,
            f"an encoding into input_shape's {input_shape[0]} features, not {features}")


def _check_adapters(adapters: Any) -> None:
    if adapters is None:  # also folders of versions before adapters
        return
    require(isinstance(adapters, dict) and adapters.get("kind") == "lora", "adapters",
            'null or {"kind": "lora", "rank": .., "alpha": .., "base": ..}')
    for key in ("rank", "alpha"):
        require(_whole(adapters.get(key)) and adapters[key] >= 1, f"adapters.{key}",
                "a positive whole number")
    require(isinstance(adapters.get("base"), str), "adapters.base", "a string")


def first_line(exc: BaseException) -> str:
    """The start of an exception's message, for one-line errors."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
