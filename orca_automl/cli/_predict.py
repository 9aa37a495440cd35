"""`orca-predict`: predictions of a saved model folder or ensemble folder (from orca-train
or orca-search); `load_model` serves both the same way.

Every input is checked before the model runs: `--output` first (a file in an existing
folder, of a known kind), then the model folder, then the input file (a regular file of real
numbers; a table through the model's saved column encoding)."""

from __future__ import annotations

import argparse
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orca_automl.cli._common import OneLineParser, add_plugin_flag, run_command
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import real_array, regular_file

if TYPE_CHECKING:
    from orca_automl.cycle._saved import SavedPredictor

INPUT_KINDS = "give a .npy, .npz, .csv or .parquet file"
OUTPUT_SUFFIXES = (".csv", ".npy", ".json")


def predict_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="orca-predict",
        description="Predict with a saved model folder (from orca-train or orca-search).\n"
        "An ensemble folder (a bag of fold models or a weighted ensemble; it holds\n"
        "ensemble.json) works the same way: it predicts the weighted average of its members.",
        epilog="examples:\n  orca-predict --model models/gunpoint --input new_series.npz\n"
        "  orca-predict --model studies/gunpoint/winners/rank1 --input x.npy --output pred.csv\n"
        "  orca-predict --model studies/gunpoint/winners/bag --input x.npy --proba "
        "--output p.npy   # an ensemble folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="a saved model folder or ensemble folder")
    p.add_argument("--input", required=True,
                   help=".npy, .npz (array X, or X_test), or .csv/.parquet: the columns the "
                   "model was trained on, by name (a table task), or numeric features")
    p.add_argument("--output", help="write predictions to .csv, .npy or .json instead of stdout")
    p.add_argument("--proba", action="store_true",
                   help="class probabilities (classification) or label probabilities (multilabel)")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N")
    add_plugin_flag(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def read_inputs(path: Path, saved: SavedPredictor | None = None) -> np.ndarray:
    """The samples in input file `path`: an array of real numbers, or a table's rows as the
    features of `saved` (the model's saved column encoding; numeric columns when None)."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv", ".parquet"):
        raise OrcaInputError(f"input {path}: unsupported extension {suffix!r}: use .npy, .npz, "
                             ".csv or .parquet")
    regular_file(path, "input file", INPUT_KINDS)
    try:
        if suffix in (".csv", ".parquet"):
            import pandas as pd

            from orca_automl.cycle._saved import numeric_columns

            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
            if saved is None:
                return numeric_columns(frame, str(path))
            return saved.table_features(frame, str(path))
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                key = next((k for k in ("X", "X_test") if k in data.files), None)
                if key is None:
                    raise OrcaInputError(f"{path} has no array named X or X_test: save inputs "
                                         "as X")
                data = data[key]
        if not isinstance(data, np.ndarray):  # np.load reads by content, not by name
            raise ValueError("not a numpy array file")
        return real_array(data, f"input {path}")
    except OrcaInputError:
        raise
    except (ValueError, OSError, EOFError, ImportError, zipfile.BadZipFile) as exc:
        from orca_automl.cycle._meta import first_line

        why = ("it holds pickled Python objects, which are never loaded" if "pickle" in str(exc)
               else f"{type(exc).__name__}: {first_line(exc)}")
        raise OrcaInputError(f"cannot read {path} ({why}): give numeric arrays (numpy.save or "
                             "savez) or a table") from None


def output_path(text: str) -> Path:
    """`--output`: a .csv, .npy or .json file in a folder that exists, and not a folder."""
    dest = Path(text)
    if dest.is_dir():
        raise OrcaInputError(f"--output {dest} is a folder: give a file name in it, such as "
                             f"{dest / 'predictions.csv'}")
    if dest.suffix not in OUTPUT_SUFFIXES:
        raise OrcaInputError(f"--output {dest}: use a .csv, .npy or .json file name")
    if not dest.parent.is_dir():
        raise OrcaInputError(f"--output {dest}: the folder {dest.parent} does not exist: create "
                             "it first or give a path in an existing folder")
    if dest.exists() and not dest.is_file():
        raise OrcaInputError(f"--output {dest} is not a regular file (a pipe, socket or "
                             "device): give a file path")
    return dest


def _predict(args: argparse.Namespace) -> int:
    from orca_automl.cycle import load_model

    dest = output_path(args.output) if args.output else None
    saved = load_model(args.model, device=args.device)
    X = read_inputs(Path(args.input), saved)
    if X.ndim == len(saved.input_shape):  # one sample
        X = X[None]
    out = saved.predict_proba(X) if args.proba else saved.predict(X)
    names = saved.meta["task"]["class_names"]
    if saved.task_type == "classification" and not args.proba and names:
        rows: list[Any] = [names[int(i)] for i in out]
    else:
        rows = out.tolist()
    if dest is None:
        for row in rows:
            print(row if isinstance(row, (str, int, float)) else json.dumps(row))
        return 0
    try:
        if dest.suffix == ".npy":
            np.save(dest, np.asarray(out))
        elif dest.suffix == ".json":
            dest.write_text(json.dumps(rows))
        else:
            import pandas as pd

            flat = np.asarray(out).reshape(len(out), -1) if not isinstance(rows[0], str) else rows
            pd.DataFrame(flat).to_csv(dest, index=False)
    except OSError as exc:
        raise OrcaInputError(f"--output {dest}: cannot write it ({exc.strerror}): give a "
                             "writable path") from None
    print(f"wrote {len(rows)} predictions to {dest}")
    return 0


def predict_main(argv: Sequence[str] | None = None) -> int:
    args = predict_parser().parse_args(argv)
    return run_command("orca-predict", _predict, args)
