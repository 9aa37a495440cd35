"""The on-disk cache for computed reference features (and other derived data).

Reference features cost a forward pass over thousands of samples; they depend only on the
backbone's input layer and the reference data, so they are computed once per key. Writes go
to a temporary file renamed into place, so a killed run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """`$ORCA_AUTOML_CACHE`, else `~/.cache/orca-automl`."""
    root = os.environ.get("ORCA_AUTOML_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "orca-automl"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def load_arrays(kind: str, key: str) -> dict[str, np.ndarray] | None:
    path = cache_dir() / kind / f"{key}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    folder = cache_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, folder / f"{key}.npz")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
