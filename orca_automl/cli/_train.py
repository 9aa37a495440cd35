"""`orca-train`: one align-then-refine run of one configuration, saved as a model folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from orca_automl.cli._common import OneLineParser, add_plugin_flag, parse_override, run_command
from orca_automl.config import Stage
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import unwritable_ancestor

TRAIN_EXAMPLES = """examples:
  orca-train --task gunpoint
  orca-train --task digits --config my_config.yaml --output models/digits
  orca-train --task data.csv --target label --set align.metric=none --set refine.steps=800
"""


def train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
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
    p.add_argument("--schedule", choices=list(Stage), type=Stage, default=Stage.FULL,
                   help="full (default) or the search's short schedule")
    p.add_argument("--seed", type=int, help="seed for splits, initialisation and batches")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when visible)")
    p.add_argument("--output", help="model folder to write (default: models/<task>)")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    add_plugin_flag(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def _train(args: argparse.Namespace) -> int:
    from orca_automl.config import OrcaConfig
    from orca_automl.cycle import CycleCallback, evaluate, run_cycle, save_model
    from orca_automl.inputs import check_seed, resolve_device
    from orca_automl.tasks import load_task

    device = resolve_device(args.device) if args.device else None
    if args.output:  # before training, not after: the run would be lost
        _check_output(Path(args.output))
    config = OrcaConfig.from_yaml(args.config) if args.config else OrcaConfig()
    overrides = dict(parse_override(s) for s in args.set)
    if args.seed is not None:
        overrides["seed"] = check_seed(args.seed)
    if overrides:
        config = config.with_overrides(overrides)
    task = load_task(args.task, task_type=args.task_type, target=args.target, seed=config.seed)
    output = Path(args.output) if args.output else Path("models") / task.name
    _check_output(output)
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

    result = run_cycle(task, config, schedule=args.schedule, callback=Progress(),
                       device=str(device) if device else None)
    test = evaluate(result.model, task, "test")
    for note in result.notes:
        print(f"NOTE: {note}")
    if result.final_align_loss is not None:
        print(f"alignment ({config.align.metric}): {result.initial_align_loss:.4f} -> "
              f"{result.final_align_loss:.4f}")
    print(f"checkpoint: {result.selection} (step {result.selected_step} of {result.refine_steps})")
    print(f"validation {result.val.metric}: {result.val.value:.4f}")
    print(f"test {test.metric}: {test.value:.4f}")
    save_model(result.model, task, config, output, scores=result.scores(test), notes=result.notes)
    print(f"saved model: {output}  ({result.device_seconds:.0f} s, {result.cost:.3f} GFLOPs/sample)")
    return 0


def _check_output(output: Path) -> None:
    """The model folder to write: a new folder (parents made) or an earlier model folder,
    which the new model replaces; never a file or a folder of other files."""
    if output.exists() and not (output / "meta.json").is_file():
        raise OrcaInputError(f"--output {output} exists and is not a model folder: choose another")
    ancestor = unwritable_ancestor(output)
    if ancestor is not None:
        raise OrcaInputError(f"--output {output}: cannot make it ({ancestor} is not a writable "
                             "folder): give a path in a folder you can write")


def train_main(argv: Sequence[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    return run_command("orca-train", _train, args)
