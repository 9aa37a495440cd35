"""Checks every loader makes of what a user hands us, so that no input can block, run code,
exhaust memory or fail deep inside with an internal error.

Files must be regular files (a named pipe or a device would block a reader forever), text
must be UTF-8, YAML may use anchors and aliases but not expand beyond `MAX_YAML_NODES`
(an "alias bomb" of a few lines expands to billions of nodes), arrays must hold real numbers,
seeds fit numpy's generators and devices exist on this machine. Each check raises
`OrcaInputError` with one line naming the input and the fix.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from orca_automl.errors import OrcaInputError

if TYPE_CHECKING:  # torch loads only when a device is resolved
    import torch

#: The most nodes a YAML document may expand to, aliases counted at every use: a search
#: space or config holds a few hundred.
MAX_YAML_NODES = 100_000
#: Seeds seed numpy's legacy generator and scikit-learn too, which take 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1
#: Array kinds that hold real numbers: booleans, integers, floats.
REAL_KINDS = "biuf"


def regular_file(path: Path, what: str, fix: str) -> Path:
    """`path` when it is a regular file (or a link to one); otherwise one line saying what it
    is, e.g. ``regular_file(p, "config file", "give a YAML file")``."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise OrcaInputError(f"{what} {path} does not exist: {fix}") from None
    except OSError as exc:
        raise OrcaInputError(f"{what} {path} cannot be read ({exc.strerror}): {fix}") from None
    if stat.S_ISDIR(mode):
        raise OrcaInputError(f"{what} {path} is a folder, not a file: {fix}")
    if not stat.S_ISREG(mode):
        raise OrcaInputError(f"{what} {path} is not a regular file (a pipe, socket or device): "
                             f"{fix}")
    return path


def unwritable_ancestor(path: Path) -> Path | None:
    """The nearest existing folder above `path` when it cannot be written into (or is not a
    folder at all): where making `path` would fail; None when it can be made."""
    ancestor = path.absolute().parent
    while not ancestor.exists() and not ancestor.is_symlink():
        ancestor = ancestor.parent
    if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
        return None
    return ancestor


def read_text(path: Path, what: str, fix: str) -> str:
    """The UTF-8 text of regular file `path`."""
    try:
        return regular_file(path, what, fix).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise OrcaInputError(f"{what} {path} is not UTF-8 text (byte {exc.start}): {fix}") from None
    except OSError as exc:
        raise OrcaInputError(f"{what} {path} cannot be read ({exc.strerror}): {fix}") from None


def load_yaml(text: str, source: str) -> Any:
    """`yaml.safe_load(text)`, refusing a document that expands beyond `MAX_YAML_NODES`
    nodes or nests too deeply; `source` names the text in the error (e.g. "search space
    my.yaml")."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            return None
        _count_nodes(root, {}, set())
        return yaml.SafeLoader("").construct_document(root)
    except OrcaInputError as exc:
        raise OrcaInputError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise OrcaInputError(f"{source} is not valid YAML{where}: fix its syntax") from None
    except RecursionError:
        raise OrcaInputError(f"{source} nests too deeply: flatten it") from None


def _count_nodes(node: yaml.Node, counted: dict[int, int], open_: set[int]) -> int:
    """Nodes under `node`, each alias counted at every place it is used (each distinct node is
    visited once, so a bomb is measured without being expanded)."""
    key = id(node)
    if key in counted:
        return counted[key]
    if key in open_:
        raise OrcaInputError("a YAML alias refers to a node that holds it: remove the cycle")
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_count_nodes(child, counted, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_count_nodes(k, counted, open_) + _count_nodes(v, counted, open_)
                     for k, v in node.value)
    open_.discard(key)
    if total > MAX_YAML_NODES:
        raise OrcaInputError(f"YAML expands to more than {MAX_YAML_NODES:,} nodes through its "
                             "aliases: write the values out or use fewer aliases")
    counted[key] = total
    return total


def real_array(array: np.ndarray, what: str) -> np.ndarray:
    """`array` when it holds real numbers (booleans, integers, floats); complex numbers would
    lose their imaginary part, text and dates are no inputs."""
    kind = array.dtype.kind
    if kind == "c":
        raise OrcaInputError(f"{what} holds complex numbers: give real inputs (e.g. the real "
                             "and imaginary parts as separate channels)")
    if kind not in REAL_KINDS:
        raise OrcaInputError(f"{what} holds {array.dtype} values, not numbers: give numeric "
                             "inputs")
    return array


def check_seed(seed: object, flag: str = "--seed") -> int:
    """A seed in 0 .. 2**32 - 1 (what numpy and scikit-learn accept)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise OrcaInputError(f"{flag} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def check_finite(value: float, flag: str) -> float:
    """A finite number (NaN and infinity pass every comparison test the wrong way)."""
    if not math.isfinite(value):
        raise OrcaInputError(f"{flag} must be a finite number, got {value!r}")
    return value


def resolve_device(name: str | None) -> torch.device:
    """The torch device `name` names (None: cpu), when this machine has it: cpu, cuda or
    cuda:N for a visible GPU N, or mps on Apple silicon."""
    import torch

    if name is None:
        return torch.device("cpu")
    fix = "use cpu, or cuda / cuda:N where a GPU is visible"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise OrcaInputError(f"--device {name!r} is not a device name: {fix}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OrcaInputError(f"--device {name}: no GPU is visible here: use cpu")
        if device.index is not None and device.index >= count:
            raise OrcaInputError(f"--device {name}: this machine has {count} GPU(s), "
                                 f"cuda:0 to cuda:{count - 1}")
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    raise OrcaInputError(f"--device {name}: no such device here: {fix}")
