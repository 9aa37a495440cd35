"""`orca-predict`: predictions of a saved model folder or ensemble folder (from orca-train
or orca-search); `load_model` serves both the same way."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orca_automl.cli._common import OneLineParser, add_plugin_flag, run_command
from orca_automl.errors import OrcaInputError


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
                   help=".npy, .npz (array X, or X_test), or .csv/.parquet with numeric feature columns")
    p.add_argument("--output", help="write predictions to .csv, .npy or .json instead of stdout")
    p.add_argument("--proba", action="store_true",
                   help="class probabilities (classification) or label probabilities (multilabel)")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N")
    add_plugin_flag(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def read_inputs(path: Path) -> np.ndarray:
    if not path.is_file():
        raise OrcaInputError(f"input file {path} does not exist: give a .npy, .npz, .csv or .parquet")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for key in ("X", "X_test"):
                    if key in data.files:
                        return data[key]
            raise OrcaInputError(f"{path} has no array named X or X_test: save inputs as X")
        if suffix in (".csv", ".parquet"):
            import pandas as pd

            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
            numeric = frame.select_dtypes("number")
            if numeric.shape[1] != frame.shape[1]:
                raise OrcaInputError(f"{path}: non-numeric columns; give the numeric features only")
            return numeric.to_numpy(np.float32)
    except (ValueError, OSError) as exc:
        if isinstance(exc, OrcaInputError):
            raise
        raise OrcaInputError(f"cannot read {path} ({exc}): check the file") from None
    raise OrcaInputError(f"input {path}: unsupported extension {suffix!r}: use .npy, .npz, .csv or .parquet")


def _predict(args: argparse.Namespace) -> int:
    from orca_automl.cycle import load_model

    saved = load_model(args.model, device=args.device)
    X = read_inputs(Path(args.input))
    if X.ndim == len(saved.input_shape):  # one sample
        X = X[None]
    out = saved.predict_proba(X) if args.proba else saved.predict(X)
    names = saved.meta["task"]["class_names"]
    if saved.task_type == "classification" and not args.proba and names:
        rows: list[Any] = [names[int(i)] for i in out]
    else:
        rows = out.tolist()
    if args.output:
        dest = Path(args.output)
        if dest.suffix == ".npy":
            np.save(dest, np.asarray(out))
        elif dest.suffix == ".json":
            dest.write_text(json.dumps(rows))
        elif dest.suffix == ".csv":
            import pandas as pd

            flat = np.asarray(out).reshape(len(out), -1) if not isinstance(rows[0], str) else rows
            pd.DataFrame(flat).to_csv(dest, index=False)
        else:
            raise OrcaInputError(f"--output {dest}: use a .csv, .npy or .json file name")
        print(f"wrote {len(rows)} predictions to {dest}")
    else:
        for row in rows:
            print(row if isinstance(row, (str, int, float)) else json.dumps(row))
    return 0


def predict_main(argv: Sequence[str] | None = None) -> int:
    args = predict_parser().parse_args(argv)
    return run_command("orca-predict", _predict, args)
