"""Tasks from the user's own data files: .npz, .csv, .parquet, or a folder of them.

Layouts:
- `.npz` with arrays X_train, y_train and optionally X_val, y_val and X_test, y_test (each
  pair both or neither). The modality follows X's dimensions: (N, F) tabular, (N, C, L)
  series ("1d"; give univariate series as (N, 1, L)), (N, C, H, W) images ("2d").
- `.csv` / `.parquet`: one row per sample, one target column (`target=`, else a column named
  "target", else the last column); the other columns are inputs, numeric ones as they are
  and the rest one-hot encoded with the categories seen in the training split.
- A folder holding either `data.npz`, or `train.csv` (or `train.parquet`) with optional
  `val.*` and `test.*` files of the same columns.
Missing splits are carved from training data (see `_build`): test 20% with a fixed seed,
then validation `val_fraction` (default 20%) with the task seed; the description says so.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orca_automl.errors import OrcaInputError
from orca_automl.inputs import regular_file
from orca_automl.tasks._base import Task
from orca_automl.tasks._build import SPLITS, RawData, build_task
from orca_automl.tasks._tables import check_complete

TABLE_SUFFIXES = (".csv", ".parquet")
DATA_SUFFIXES = (".npz", *TABLE_SUFFIXES)
NPZ_KEYS = tuple(f"{a}_{s}" for s in SPLITS for a in ("X", "y"))
NDIM_MODALITY = {2: "tabular", 3: "1d", 4: "2d"}


def looks_like_path(spec: str) -> bool:
    """True for specs meant as files or folders rather than built-in task names."""
    p = Path(spec)
    return p.suffix.lower() in DATA_SUFFIXES or "/" in spec or "\\" in spec or p.exists()


def load_file_task(
    path: Path,
    *,
    task_type: str | None,
    target: str | None,
    seed: int,
    val_fraction: float | None,
) -> Task:
    """Read `path` (a data file or folder, layouts above) into a Task."""
    if not path.exists():
        raise OrcaInputError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        npz = path / "data.npz"
        tables = {s: _table_file(path, s) for s in SPLITS}
        if npz.exists() and tables["train"] is not None:
            raise OrcaInputError(
                f"{path}: holds both data.npz and {tables['train']}; keep one of them"
            )
        if tables["train"] is None and not npz.exists():
            raise OrcaInputError(
                f"{path}: folder has neither data.npz nor train.csv / train.parquet; "
                "add one (plus optional val.* and test.*)"
            )
        files = {"train": npz} if npz.exists() else {s: f for s, f in tables.items() if f}
    elif path.suffix.lower() in DATA_SUFFIXES:
        files = {"train": path}
    else:
        raise OrcaInputError(
            f"{path}: unsupported file type {path.suffix!r}; use .npz, .csv, .parquet or a folder"
        )
    for file in files.values():  # a named pipe would block its reader forever
        regular_file(file, "data file", "give a .npz, .csv or .parquet file")
    source = str(path)
    if files["train"].suffix.lower() == ".npz":
        if target is not None:
            raise OrcaInputError(
                f"{path}: target={target!r} names a table column, but .npz files hold arrays "
                "X_*/y_*; drop the target"
            )
        raw = _read_npz(files["train"])
        X_train = raw.X_train
        assert isinstance(X_train, np.ndarray)
        if X_train.ndim not in NDIM_MODALITY:
            raise OrcaInputError(
                f"{files['train']}: X_train has shape {X_train.shape}; give (N, F) features, "
                "(N, C, L) series or (N, C, H, W) images"
            )
        modality = NDIM_MODALITY[X_train.ndim]
    else:
        raw, target = _read_tables(files, target)
        modality = "tabular"
    names = ", ".join(f.name for f in files.values())
    detail = f", target column {target!r}" if target else ""
    return build_task(
        path.stem if path.is_file() else path.resolve().name,  # "." names its folder
        raw,
        modality=modality,
        source=source,
        intro=f"user data {path.name} ({names}{detail})",
        seed=seed,
        val_fraction=val_fraction,
        task_type=task_type,
    )


def _table_file(folder: Path, split: str) -> Path | None:
    found = [folder / f"{split}{s}" for s in TABLE_SUFFIXES if (folder / f"{split}{s}").exists()]
    if len(found) > 1:
        raise OrcaInputError(f"{folder}: holds both {found[0].name} and {found[1].name}; keep one")
    return found[0] if found else None


def _read_npz(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise OrcaInputError(
            f"{path}: cannot read it as .npz ({_first_line(e)}); "
            "write it with numpy.savez and no object arrays"
        ) from None
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    if unknown:
        raise OrcaInputError(
            f"{path}: unexpected arrays {unknown}; name them {', '.join(NPZ_KEYS)}"
        )
    missing = [k for k in ("X_train", "y_train") if k not in arrays]
    if missing:
        raise OrcaInputError(
            f"{path}: missing arrays {missing} (found {sorted(arrays)}); "
            "save at least X_train and y_train"
        )
    return RawData(**arrays)


def _read_tables(files: dict[str, Path], target: str | None) -> tuple[RawData, str]:
    """DataFrames of input columns and target arrays per split; the target column's name."""
    frames = {s: _read_table(f) for s, f in files.items()}
    columns = [str(c) for c in frames["train"].columns]
    if not columns:
        raise OrcaInputError(f"{files['train']}: the table has no columns; give a header row, "
                             "input columns and a target column")
    if target is None:
        target = "target" if "target" in columns else columns[-1]
    parts: dict[str, Any] = {}
    for s, df in frames.items():
        if target not in df.columns:
            raise OrcaInputError(
                f"{files[s]}: no target column {target!r} (columns: {list(map(str, df.columns))}); "
                "pass target= with the right name"
            )
        check_complete(df, source=str(files[s]))
        y = df[target]
        is_number = pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)
        parts[f"y_{s}"] = y.to_numpy() if is_number else y.astype(str).to_numpy(dtype=str)
        parts[f"X_{s}"] = df.drop(columns=[target])
    return RawData(**parts), target


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError, ImportError, pd.errors.ParserError) as e:
        raise OrcaInputError(
            f"{path}: cannot read it as a table ({_first_line(e)}); check the file"
        ) from None


def _first_line(e: Exception) -> str:
    """Error messages must stay one line; library messages sometimes span several."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
