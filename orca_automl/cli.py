"""Console entry points: `orca-train` (one align-then-refine run) and `orca-predict`.

`orca-search` lives in `orca_automl.search._command`. Every command turns `OrcaInputError`
into one line on stderr and exit code 2; any other failure is exit code 1 with the
traceback shown only under --debug.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from orca_automl.errors import OrcaInputError


def run_command(name: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command body with the project's exit-code contract."""
    try:
        return body(args)
    except OrcaInputError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal failure: exit 1
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            print(f"{name}: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
                  file=sys.stderr)
        return 1


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise OrcaInputError(f"--set {text!r}: write KEY=VALUE, e.g. --set refine.lr=3e-4")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


# ----------------------------------------------------------------------------- orca-train
TRAIN_EXAMPLES = """examples:
  orca-train --task gunpoint
  orca-train --task digits --config my_config.yaml --output models/digits
  orca-train --task data.csv --target label --set align.metric=none --set refine.steps=800
"""


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="orca-train",
        description="Run one align-then-refine configuration on a task, print validation and "
        "test scores, and save a model folder that orca-predict uses.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True,
                   help="built-in task name (gunpoint, digits, ...) or a data file/folder")
    p.add_argument("--config", help="YAML config (sections model, align, refine; see README)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set refine.lr=3e-4 (repeatable)")
    p.add_argument("--task-type", choices=["classification", "multilabel", "regression", "dense"],
                   help="task type of a data file, when inference is not wanted")
    p.add_argument("--target", help="target column of a .csv/.parquet file")
    p.add_argument("--schedule", choices=["full", "short"], default="full",
                   help="full (default) or the search's short schedule")
    p.add_argument("--seed", type=int, help="seed for splits, initialisation and batches")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when visible)")
    p.add_argument("--output", help="model folder to write (default: models/<task>)")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def _train(args: argparse.Namespace) -> int:
    from orca_automl.config import OrcaConfig
    from orca_automl.cycle import CycleCallback, evaluate, run_cycle, save_model
    from orca_automl.tasks import load_task

    config = OrcaConfig.from_yaml(args.config) if args.config else OrcaConfig()
    overrides = dict(_parse_override(s) for s in args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if overrides:
        config = config.with_overrides(overrides)
    task = load_task(args.task, task_type=args.task_type, target=args.target, seed=config.seed)
    output = Path(args.output) if args.output else Path("models") / task.name
    if output.exists() and not (output / "meta.json").is_file():
        raise OrcaInputError(f"--output {output} exists and is not a model folder: choose another")
    print(f"task {task.name}: {task.description}")
    print(f"  {task.task_type}, {task.modality} input {task.input_shape}, "
          f"train/val/test {len(task.train)}/{len(task.val)}/{len(task.test)}")

    class Progress(CycleCallback):
        def on_align_step(self, step: int, loss: float) -> None:
            if not args.quiet and (step % 10 == 0):
                print(f"  align step {step:4d}  distance {loss:.4f}", flush=True)

        def on_eval(self, step: int, val_score: float, val_loss: float) -> bool:
            if not args.quiet:
                print(f"  refine step {step:5d}  val score {val_score:.4f}  val loss {val_loss:.4f}",
                      flush=True)
            return True

    result = run_cycle(task, config, schedule=args.schedule, callback=Progress(), device=args.device)
    test = evaluate(result.model, task, "test")
    for note in result.notes:
        print(f"NOTE: {note}")
    if result.final_align_loss is not None:
        print(f"alignment ({config.align.metric}): {result.initial_align_loss:.4f} -> "
              f"{result.final_align_loss:.4f}")
    print(f"checkpoint: {result.selection} (step {result.selected_step} of {result.refine_steps})")
    print(f"validation {result.metric_name}: {result.val_metric:.4f}")
    print(f"test {test['metric']}: {test['value']:.4f}")
    save_model(result.model, task, config, output, scores=result.scores(test), notes=result.notes)
    print(f"saved model: {output}  ({result.device_seconds:.0f} s, {result.cost:.3f} GFLOPs/sample)")
    return 0


def train_main(argv: Sequence[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    return run_command("orca-train", _train, args)


# --------------------------------------------------------------------------- orca-predict
def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="orca-predict",
        description="Predict with a saved model folder (from orca-train or orca-search).",
        epilog="examples:\n  orca-predict --model models/gunpoint --input new_series.npz\n"
        "  orca-predict --model studies/gunpoint/winners/rank1 --input x.npy --output pred.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="a saved model folder")
    p.add_argument("--input", required=True,
                   help=".npy, .npz (array X, or X_test), or .csv/.parquet with numeric feature columns")
    p.add_argument("--output", help="write predictions to .csv, .npy or .json instead of stdout")
    p.add_argument("--proba", action="store_true", help="class probabilities (classification)")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N")
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

