"""The on-disk cache for derived data: reference features, generated PDE datasets.

Both are expensive to compute and depend only on their key, so they are computed once.
Writes go to a temporary file renamed into place, so a killed run or two concurrent trials
never see a half-written entry; an unreadable entry is recomputed, an unwritable cache
costs a recomputation next time, never the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CACHE_ENV = "ORCA_AUTOML_CACHE"


def cache_dir() -> Path:
    """`$ORCA_AUTOML_CACHE`, else `~/.cache/orca-automl`."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "orca-automl"


def cache_key(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def load_arrays(kind: str, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent or unreadable."""
    path = cache_dir() / kind / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    folder = cache_dir() / kind
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, folder / f"{key}.npz")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
