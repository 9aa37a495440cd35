"""`orca-search`: budgeted search, promotion and saved winners, resumable from the database.

A thin face over `orca_automl.search.run_search`: the flags become `SearchOptions`, the
search's events become the progress display, and the winners table ends the run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import optuna

from orca_automl.cli._common import OneLineParser, add_plugin_flag, one_line, run_command
from orca_automl.cli._progress import Progress, winners_table
from orca_automl.cli._report import describe_report
from orca_automl.search import (
    PRUNING_MODES,
    SAMPLERS,
    Execution,
    SearchOptions,
    Toolkit,
    ray_execution,
    redact_url,
    run_search,
)

DESCRIPTION = """\
Find, within a compute budget, the best way to adapt a pretrained model to your task:
each trial samples a backbone, an embedder, an alignment metric and fine-tuning
hyperparameters from a search space, runs a SHORT align-then-refine cycle, and is pruned
early when its alignment loss (or validation score) says it will not win. The top-K
configurations are then trained with the FULL schedule, tested once, and saved as model
folders that orca-predict uses, beside the field's classical method and 1-NN, which are
saved too and compete for the winner. Optuna keeps every trial in a database, so running
the same command again resumes the study."""

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
  studies/<study>/report/report.html    the study's report (also report.md and PNGs; orca-report)
  studies/<study>/ray/                  Ray's logs of the last local run (session_latest/logs/)
  The <study>/ folder sits next to an SQLite file; for other databases it is ./studies/<study>/.

exit codes: 0 done, 2 bad input (nothing written to the study), 1 internal failure."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="orca-search", description=DESCRIPTION, epilog=EPILOG,
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
                        "--address ray://head-node:10001 (its nodes need orca-automl installed; "
                        "the RAY_ADDRESS variable is not read)")
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
    p.add_argument("--validation", default="auto", metavar="auto|holdout|cv:K[/S]",
                   help="how configurations are scored: auto (default: cv:5 below 2000 "
                        "training + validation samples, else holdout), holdout (the task's "
                        "validation split), or cv:K (K-fold cross-validation of training + "
                        "validation data; short trials run S of the folds, 2 unless given as "
                        "cv:K/S; a promoted configuration becomes a bag of K fold models), "
                        "e.g. --validation cv:5")
    p.add_argument("--no-baselines", action="store_true",
                   help="do not score the field's classical method and 1-NN in the study first "
                        "(they are scored once per study, on the same validation protocol, and "
                        "charged to the budget)")
    p.add_argument("--no-ensemble", action="store_true",
                   help="do not select a weighted ensemble of the fully trained configurations "
                        "(greedy selection on their validation predictions) as a winner candidate")
    p.add_argument("--baselines-as-reference", action="store_true",
                   help="score the baselines as references only: not saved as models, never "
                        "the winner nor in an ensemble (by default they compete: saved as "
                        "models, the best validated baseline is the incumbent the engine default "
                        "and the search's models must beat beyond noise)")
    p.add_argument("--refit", action="store_true",
                   help="under cross-validation, a promoted configuration also trains one model "
                        "on all training + validation data (its final checkpoint) and that model "
                        "is saved and served instead of the bag of its fold models (one model "
                        "to run instead of K; its folds still score it)")
    p.add_argument("--no-report", action="store_true",
                   help="do not write the study's report (studies/<study>/report/report.html, "
                        "PNGs, report.md) and its optuna-dashboard figures at the end; "
                        "orca-report writes it any time")
    p.add_argument("--new-study", action="store_true",
                   help="when the study exists for other data or another space, start a new one "
                        "named <study>-2, -3, ... in the same storage instead of refusing")
    add_plugin_flag(p)
    p.add_argument("--debug", action="store_true",
                   help="show tracebacks of internal errors and the workers' logs")
    return p


def search_main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `orca-search`."""
    args = build_parser().parse_args(argv)
    return run_command("orca-search", search_command, args)


def options_from_args(args: argparse.Namespace) -> SearchOptions:
    """The parsed flags as the search's typed options."""
    return SearchOptions(
        task=args.task,
        budget=args.budget,
        search_space=args.search_space,
        storage=args.storage,
        study=args.study,
        workers=args.workers,
        address=args.address,
        gpus_per_trial=args.gpus_per_trial,
        seed=args.seed,
        top_k=args.top_k,
        sampler=args.sampler,
        pruning=args.pruning,
        new_study=args.new_study,
        debug=args.debug,
        validation=args.validation,
        baselines=not args.no_baselines,
        ensemble=not args.no_ensemble,
        baselines_compete=not args.baselines_as_reference,
        refit=args.refit,
    )


def search_command(
    args: argparse.Namespace,
    *,
    toolkit: Toolkit | None = None,
    execution: Execution = ray_execution,
    out: TextIO | None = None,
    progress: Progress | None = None,
) -> int:
    """The command's body: run one budget session, then print the winners and the study."""
    out = out or sys.stdout
    optuna.logging.set_verbosity(optuna.logging.INFO if args.debug else optuna.logging.WARNING)
    result = run_search(options_from_args(args), progress or Progress(out=out),
                        toolkit=toolkit, execution=execution)
    print(winners_table(result), file=out)
    url = redact_url(result.storage)
    print(f"study {result.study_name!r}: {url}  (optuna-dashboard {url})", file=out)
    if not args.no_report:
        write_session_report(result.storage, result.study_name, args.debug, out)
    return 0


def write_session_report(storage: str, study_name: str, debug: bool, out: TextIO) -> None:
    """The study's report, written and registered with optuna-dashboard. A report that fails
    costs the search nothing: one line says so and how to retry, and the command still
    succeeds (its trials and winners are saved)."""
    from orca_automl.report import register_dashboard, write_report

    try:
        report = write_report(storage, study_name)
        register_dashboard(storage, study_name, report)
    except Exception as exc:
        if debug:
            raise
        print(f"orca-search: the report was not written ({type(exc).__name__}: "
              f"{one_line(str(exc))}); orca-report --study {study_name} retries it",
              file=sys.stderr)
        return
    print(describe_report(report, dashboard=True), file=out)
