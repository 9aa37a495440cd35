"""`orca-search`: budgeted search, promotion and saved winners, resumable from the database.

Input is validated in full (budget, GPUs, search space, storage URL, task, an existing study's
fingerprint and space) before anything is created or changed; only then is Ray started and the
study opened. See `build_parser` for the flags and the study layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

import optuna

from orca_automl.errors import OrcaInputError
from orca_automl.search._budget import Budget, BudgetLedger, format_seconds, parse_budget
from orca_automl.search._executor import ExecutionPlan, Executor, check_resources, ray_execution
from orca_automl.search._loop import LoopSettings, SearchLoop
from orca_automl.search._progress import Progress, winners_table
from orca_automl.search._pruning import PRUNING_MODES, pruners
from orca_automl.search._records import ENGINE_DEFAULT_TRIAL
from orca_automl.search._runner import Toolkit, TrialRunner, cycle_toolkit
from orca_automl.search._space import SearchSpace
from orca_automl.search._storage import (
    StudyHandle,
    begin_session,
    check_resumable,
    check_storage_url,
    default_storage_url,
    end_session,
    fresh_study_name,
    read_existing,
    reconcile_interrupted,
    study_folder,
)

Execution = Callable[[ExecutionPlan, TrialRunner, Any], AbstractContextManager[Executor]]

DESCRIPTION = """\
Find, within a compute budget, the best way to adapt a pretrained model to your task:
each trial samples a backbone, an embedder, an alignment metric and fine-tuning
hyperparameters from a search space, runs a SHORT align-then-refine cycle, and is pruned
early when its alignment loss (or validation score) says it will not win. The top-K
configurations are then trained with the FULL schedule, tested once, and saved as model
folders that orca-predict uses. Optuna keeps every trial in a database, so running the
same command again resumes the study."""

EPILOG = """\
examples:
  orca-search --task gunpoint --budget 10cpu-minutes --workers 2
  orca-search --task gunpoint --budget 10cpu-minutes --workers 2   # again: resumes, adds trials
  orca-search --task data.npz --budget 8gpu-hours --gpus-per-trial 0.5 --workers 4
  orca-search --task digits --budget 2cpu-hours --search-space my_space.yaml --study digits-v2
  orca-search --task gunpoint --budget 1.5h --storage postgresql://me@dbhost/orca \\
              --address ray://head-node:10001 --gpus-per-trial 1 --workers 8
  optuna-dashboard sqlite:///studies/gunpoint.db                  # Pareto front, trials, attrs

study layout (default storage sqlite:///studies/<study>.db):
  studies/<study>.db                    the Optuna study: trials, params, states, user attrs
  studies/<study>/winners/trial-<N>/    saved winners (orca-predict --model <folder>)
  studies/<study>/ray/                  Ray's logs of a locally started cluster
  The <study>/ folder sits next to an SQLite file; for other databases it is ./studies/<study>/.

exit codes: 0 done, 2 bad input (nothing written to the study), 1 internal failure."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="orca-search", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True,
                   help="built-in task name (e.g. gunpoint, digits), a .npz/.csv/.parquet file or a "
                        "dataset folder, e.g. --task gunpoint")
    p.add_argument("--budget", required=True,
                   help="device time summed over workers: a number, an optional cpu/gpu and a unit, "
                        "e.g. --budget 8gpu-hours, 2cpu-hours, 20cpu-minutes, 90s, 1.5h; a gpu "
                        "budget needs a visible GPU; resuming a killed run deducts what it spent")
    p.add_argument("--search-space", metavar="NAME|PATH",
                   help="search_spaces/NAME.yaml or a YAML file (default: cpu-small, or default "
                        "when trials use GPUs), e.g. --search-space cpu-small")
    p.add_argument("--storage", metavar="URL",
                   help="SQLAlchemy URL of the study database (default: sqlite:///studies/<study>.db), "
                        "e.g. --storage postgresql://me@dbhost/orca")
    p.add_argument("--study", metavar="NAME",
                   help="study name (default: the task's name); the same name resumes, "
                        "e.g. --study gunpoint-wide")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="trials run in parallel (default 1), e.g. --workers 2")
    p.add_argument("--address", metavar="RAY_ADDRESS",
                   help="join this Ray cluster instead of starting Ray locally, e.g. "
                        "--address ray://head-node:10001 (its nodes need orca-automl installed)")
    p.add_argument("--gpus-per-trial", type=float, metavar="G",
                   help="GPUs each trial holds, fractions allowed (default: 1 for a gpu budget, "
                        "else 0), e.g. --gpus-per-trial 0.5")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the task's splits, the sampler and every trial (default 0), "
                        "e.g. --seed 1")
    p.add_argument("--top-k", type=int, metavar="K",
                   help="configurations promoted to full training, ranked by short validation "
                        "score, ties to the lower validation loss, then the lower cost (default: the "
                        "space's promotion.top_k), "
                        "e.g. --top-k 3")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                   help="how configurations are drawn: tpe (Optuna's multi-objective TPE, "
                        "default) or random, e.g. --sampler random")
    p.add_argument("--pruning", choices=list(PRUNING_MODES), default="all",
                   help="all: prune on the self-calibrated alignment loss before refine and by "
                        "median stopping during refine (default); refine: median stopping only; "
                        "off: run every short trial to the end. The alignment evidence is "
                        "recorded in every mode, e.g. --pruning off")
    p.add_argument("--new-study", action="store_true",
                   help="when the study exists for other data or another space, start a new one "
                        "named <study>-2, -3, ... in the same storage instead of refusing")
    p.add_argument("--debug", action="store_true",
                   help="show tracebacks of internal errors and the workers' logs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `orca-search`."""
    from orca_automl.cli import run_command

    args = build_parser().parse_args(argv)
    return run_command("orca-search", lambda a: search(a, cycle_toolkit()), args)


@dataclass(frozen=True)
class _Checked:
    """The command's input, validated in full; nothing has been written yet."""

    budget: Budget
    space: SearchSpace
    task: Any
    study_name: str
    url: str
    fingerprint: str
    previous_heartbeat: float | None
    folder: Path
    plan: ExecutionPlan


def search(
    args: argparse.Namespace,
    toolkit: Toolkit,
    execution: Execution = ray_execution,
    out: TextIO | None = None,
    progress: Progress | None = None,
) -> int:
    """The command's body: validate everything, then run one budget session of the study."""
    out = out or sys.stdout
    optuna.logging.set_verbosity(optuna.logging.INFO if args.debug else optuna.logging.WARNING)
    c = _check_input(args, toolkit)
    print(f"orca-search: task {c.task.name} ({c.task.modality}, {c.task.task_type}), "
          f"study {c.study_name!r} in {c.url}", file=out)
    print(f"  search space {c.space.name} ({c.space.path}), budget {c.budget.text} "
          f"({format_seconds(c.budget.seconds)} device time), {args.workers} worker(s)", file=out)
    with execution(c.plan, toolkit.runner, c.task) as executor:
        handle = StudyHandle.open(c.url, c.study_name, _sampler(args.sampler, args.seed), {
            "task": c.task.name,
            "task_fingerprint": c.fingerprint,
            "search_space": {"name": c.space.name, "path": str(c.space.path.resolve()),
                             "sha256": c.space.sha256},
            "winners_folder": str(c.folder / "winners"),
        })
        if not handle.records():  # a fresh study starts from the engine's defaults
            handle.study.enqueue_trial(c.space.engine_defaults(_auto_choices(c.task, toolkit)),
                                       skip_if_exists=True)
            handle.set_attr(ENGINE_DEFAULT_TRIAL, handle.study.trials[0].number)
        interrupted = reconcile_interrupted(handle, c.previous_heartbeat)
        session = begin_session(handle, c.budget)
        handle.study.sampler = _sampler(args.sampler, args.seed + len(handle.records()))
        if interrupted or session.resumed:
            print(f"  resumed: {len(interrupted)} interrupted trial(s) marked FAIL (retried first), "
                  f"{format_seconds(session.spent)} of this budget already spent", file=out)
        loop = SearchLoop(
            handle, c.space, executor, BudgetLedger(c.budget.seconds, session.spent),
            LoopSettings(
                workers=args.workers,
                top_k=args.top_k or c.space.promotion.top_k,
                promotion_share=c.space.promotion.share,
                device_share=c.plan.device_share,
                seed=args.seed,
                session=session.index,
                winners_dir=c.folder / "winners",
            ),
            progress or Progress(),
            *pruners(args.pruning),
        )
        records = loop.run()
        end_session(handle, session)
        handle.release()
    print(winners_table(records), file=out)
    print(f"study {c.study_name!r}: {c.url}  (optuna-dashboard {c.url})", file=out)
    return 0


def _check_input(args: argparse.Namespace, toolkit: Toolkit) -> _Checked:
    """Budget, GPUs, workers, search space, storage URL, task and an existing study: all
    read-only, cheapest first, so bad input costs nothing and changes nothing."""
    budget = parse_budget(args.budget)
    for flag, value in (("--workers", args.workers), ("--top-k", args.top_k)):
        if value is not None and value < 1:
            raise OrcaInputError(f"{flag} must be 1 or more, got {value}")
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if budget.kind == "gpu" else 0.0)
    if gpus < 0:
        raise OrcaInputError(f"--gpus-per-trial must be 0 or more, got {gpus:g}")
    if budget.kind == "gpu" and gpus == 0:
        raise OrcaInputError(f"budget {budget.text} counts GPU time: give --gpus-per-trial above 0")
    if args.address is None:  # a cluster's resources are checked once joined
        if gpus > 0 and not toolkit.gpu_visible():
            what = f"budget {budget.text}" if budget.kind == "gpu" else f"--gpus-per-trial {gpus:g}"
            raise OrcaInputError(
                f"{what} needs a GPU, but no GPU is visible here (torch.cuda.is_available() is "
                "False): use a CPU budget such as 2cpu-hours, or --address to run on a Ray "
                "cluster with GPUs"
            )
        check_resources(args.workers, 0.0, len(os.sched_getaffinity(0)), 0.0, "this machine")
    space = SearchSpace.load(args.search_space or ("default" if gpus > 0 else "cpu-small"),
                             toolkit.known_names())
    if args.storage:
        check_storage_url(args.storage)  # before the task, which may take a while to load
    task = toolkit.load_task(args.task, args.seed)
    name = args.study or task.name
    url = args.storage or default_storage_url(name)
    if not args.storage:
        check_storage_url(url)
    space = space.for_task(task.modality, toolkit.embedder_fits(task.modality))
    fingerprint = task.fingerprint()
    existing = read_existing(url)
    if args.new_study:
        name = fresh_study_name(existing, name)
    else:
        check_resumable(existing, name, fingerprint, space.sha256, space.path)
    folder = study_folder(url, name).absolute()
    device_share = gpus if gpus > 0 and budget.kind != "cpu" else 1.0
    return _Checked(
        budget=budget,
        space=space,
        task=task,
        study_name=name,
        url=url,
        fingerprint=fingerprint,
        previous_heartbeat=(existing.attrs.get(name, {}).get("driver") or {}).get("heartbeat"),
        folder=folder,
        plan=ExecutionPlan(args.workers, gpus, device_share, args.address, folder / "ray", args.debug),
    )


def _auto_choices(task: Any, toolkit: Toolkit) -> dict[str, str]:
    """What "auto" and empty embedder_args resolve to for this task: the default backbone, its
    default embedder, and that embedder's own argument defaults (e.g. target_seq_len 64)."""
    import inspect

    from orca_automl.backbones import DEFAULT_BACKBONES
    from orca_automl.embedders import DEFAULT_EMBEDDERS, EMBEDDERS

    backbone = DEFAULT_BACKBONES.get(task.modality)
    if backbone is None:
        return {}
    fits = toolkit.embedder_fits(task.modality)
    embedders = [e for (m, _), e in DEFAULT_EMBEDDERS.items() if m == task.modality and fits(backbone, e)]
    if not embedders:
        return {"model.backbone": backbone}
    choices = {"model.backbone": backbone, "model.embedder": embedders[0]}
    for name, arg in inspect.signature(EMBEDDERS.get(embedders[0])).parameters.items():
        if arg.default is not inspect.Parameter.empty:
            choices[f"model.embedder_args.{name}"] = arg.default
    return choices


SAMPLERS = ("tpe", "random")


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """Multi-objective TPE or random search; reseeded per session so a rerun does not replay
    the same draws."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed)
