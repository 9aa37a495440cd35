"""Does pruning on the alignment signal save compute? Searches at equal budget, four ways.

For each task and seed, four orca-search runs with the same budget, space and seed:
TPE with both pruning rules (alignment loss before refine, median stopping during refine; the
default), TPE with median stopping only, TPE without pruning, and random search without
pruning. Per run: the best full-training validation score reached (and that winner's test
score), how many configurations were explored and how each ended, and the Spearman rank
correlation between final alignment loss and short-schedule validation score over the
finished trials of the largest alignment group (like with like: same backbone, reference set
and distance), the evidence the alignment pruner calibrates on.

    python benchmarks/search_efficiency.py --tasks gunpoint italy_power_demand --budget 10cpu-minutes
    python benchmarks/search_efficiency.py --modes all/tpe off/tpe off/random   # three of the four
    python benchmarks/search_efficiency.py --tasks gunpoint --smoke      # tiny, for CI

With --fidelity N it answers a second question instead (table search_fidelity.md): does a
short trial's score rank configurations as their full-schedule test scores do, under the
hold-out split and under the fold protocol? N configurations are drawn from the space at
random (the engine's default first), and each runs the short schedule on the hold-out split,
the short schedule on the fold protocol's short folds (their mean, as a trial scores), and
the full schedule on the training split, scored once on the test split. Per task and seed:
Spearman rho between each short score and the full test score, and the test score of the
configuration each short score would pick.

    python benchmarks/search_efficiency.py --tasks gunpoint italy_power_demand --seeds 0 --fidelity 12 --resume
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import statistics
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from _report import OUT_DIR, summary, write_report  # benchmarks/ is on sys.path as a script
from _runs import RunLog
from _searching import SMOKE_OVERRIDES, fold_runs, logged_search, smoke_space
from scipy import stats

from orca_automl.config import OrcaConfig, Stage
from orca_automl.errors import OrcaInputError
from orca_automl.search import (
    CycleRunner,
    TrialRequest,
    Validation,
    combine_runs,
    cycle_toolkit,
    engine_choices,
    execute_trial,
    load_space,
    parse_validation,
    resolve_space,
)
from orca_automl.tasks import Task, load_task

#: (row label, --sampler, --pruning)
MODES = (
    ("TPE, alignment + median pruning", "tpe", "all"),
    ("TPE, median pruning only", "tpe", "refine"),
    ("TPE, no pruning", "tpe", "off"),
    ("random search, no pruning", "random", "off"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["gunpoint", "italy_power_demand"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", default="15cpu-minutes", help="orca-search budget per run")
    parser.add_argument("--workers", type=int, default=2, help="orca-search --workers")
    parser.add_argument("--modes", nargs="+", choices=[m[2] + "/" + m[1] for m in MODES],
                        default=[m[2] + "/" + m[1] for m in MODES],
                        help="which runs (pruning/sampler), e.g. --modes all/tpe off/tpe off/random")
    parser.add_argument("--smoke", action="store_true", help="tiny schedules (checks the script runs)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the runs logged beside the table for the same settings "
                             "(an interrupted call, or more seeds); default: measure everything")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    parser.add_argument("--fidelity", type=int, default=0, metavar="N",
                        help="instead of searches: N configurations run short (hold-out and "
                             "folds) and full, ranked by each (see above)")
    parser.add_argument("--validation", default="auto",
                        help="the fold protocol of --fidelity (orca-search --validation)")
    args = parser.parse_args()
    if args.fidelity:
        return fidelity(args)
    budget = "30s" if args.smoke else args.budget
    modes = [m for m in MODES if f"{m[2]}/{m[1]}" in args.modes]
    if args.smoke:  # the default search only (every mode is one flag of the same search)
        modes = [m for m in modes if m[1:] == ("tpe", "all")]

    # Finished searches are logged beside the table (shared with quality.py, whose search is
    # the default mode here): with --resume a cut-short call resumes, more seeds add to the rest.
    log = RunLog((Path(args.out) if args.out else OUT_DIR) / "search_runs.jsonl", reuse=args.resume)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        space = smoke_space(Path(scratch)) if args.smoke else None
        for name in args.tasks:
            for label, sampler, pruning in modes:
                cells: dict[str, list[float]] = defaultdict(list)
                counts: list[str] = []
                rhos: list[str] = []
                for seed in args.seeds:
                    found = logged_search(log, name, budget, seed, Path(scratch),
                                          workers=args.workers, sampler=sampler, pruning=pruning,
                                          search_space=space)
                    if found["val"] is not None:
                        cells["val"].append(found["val"])
                    if found["test"] is not None:
                        cells["test"].append(found["test"])
                    counts.append(f"{found['short']} / {found['short_complete']} / "
                                  f"{found['pruned_alignment']} / {found['pruned_median']} / "
                                  f"{found['full_complete']}")
                    cells["spent"].append(found["device_s"])
                    rho, n = found["rho"], found["rho_n"]
                    rhos.append(f"{rho:+.2f} (n={n})" if rho is not None else f"- (n={n})")
                    print(f"{name} seed {seed} {label}: {counts[-1]}, best full val "
                          f"{found['val']}, rho {rhos[-1]} in '{found['rho_group']}' "
                          f"({found['seconds']:.0f} s)", flush=True)
                rows.append({
                    "task": name,
                    "search": label,
                    "best full val score": summary(cells["val"]),
                    "its test score": summary(cells["test"]),
                    "configs explored / completed / pruned (alignment) / pruned (median) / full":
                        "; ".join(counts),
                    "device s spent": f"{statistics.mean(cells['spent']):.0f}",
                    "Spearman rho (alignment loss vs val score)": "; ".join(rhos),
                })
                report(rows, args, budget)


def fidelity(args: argparse.Namespace) -> None:
    """The --fidelity table: short-trial scores against full-schedule test scores."""
    out = Path(args.out) if args.out else OUT_DIR
    log = RunLog(out / "fidelity_runs.jsonl", reuse=args.resume)
    space_file = resolve_space("cpu-small")
    space_key = f"{space_file.name}@{hashlib.sha256(space_file.read_bytes()).hexdigest()[:12]}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: list[dict[str, object]] = []
    for name in args.tasks:
        for seed in args.seeds:
            task = load_task(name, seed=seed)
            validation = parse_validation(args.validation, len(task.train) + len(task.val), seed)
            runs = []
            for index, config in enumerate(sampled_configs(task, seed, args.fidelity)):
                key = {"task": name, "seed": seed, "run": "fidelity", "index": index,
                       "space": space_key, "validation": args.validation, "smoke": args.smoke}
                found = log.run(key, partial(short_and_full, task, config, validation, args.smoke))
                print(f"{name} seed {seed} config {index}: short hold-out {found['holdout']}, "
                      f"short folds {found['folds']}, full test {found['test']} "
                      f"({found['seconds']:.0f} s)", flush=True)
                runs.append(found)
            rows.append(fidelity_row(name, seed, runs, validation))
            write_report(
                "search_fidelity",
                "Does a short trial rank configurations as the full schedule's test score does?",
                rows, out_dir=out,
                notes=f"Per task and seed: {args.fidelity} configurations of the cpu-small space "
                "(the engine's default, then drawn at random), each run three ways with the same "
                "seed: the short schedule on the hold-out validation split, the short schedule "
                f"on the short folds of `--validation {args.validation}` (their mean, as a "
                "search scores a trial), and the full schedule on the training split, scored "
                "once on the test split. rho: Spearman rank correlation of each short score "
                "with the full test score (higher: the short trial ranks configurations as "
                "the test would). 'picked': the full test score of the configuration with the "
                "best short score (ties: the earlier). Every run is logged in "
                "fidelity_runs.jsonl beside this table; --resume reuses them.")


def sampled_configs(task: Task, seed: int, n: int) -> list[OrcaConfig]:
    """The engine's default configuration, then random draws from the task's space."""
    toolkit = cycle_toolkit()
    space = load_space("cpu-small").for_task(task.modality, toolkit.embedder_fits(task.modality))
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed))
    study.enqueue_trial(space.engine_defaults(engine_choices(task.modality)))
    configs: list[OrcaConfig] = []
    for _ in range(10 * n):  # a draw the config refuses is skipped
        if len(configs) == n:
            break
        trial = study.ask()
        with contextlib.suppress(OrcaInputError):
            configs.append(space.config(space.sample(trial), seed))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return configs


def short_and_full(task: Task, config: OrcaConfig, validation: Validation,
                   smoke: bool) -> dict[str, Any]:
    """One configuration's short score on the hold-out split and on the short folds, and its
    full-schedule test score."""
    if smoke:
        config = config.with_overrides(SMOKE_OVERRIDES)
    runner = CycleRunner()
    start = time.perf_counter()
    holdout = execute_trial(runner, TrialRequest(0, Stage.SHORT, config), task)
    folds = fold_runs(runner, task, config, validation, Stage.SHORT)
    full = execute_trial(runner, TrialRequest(0, Stage.FULL, config), task)
    folded = combine_runs(folds, task).result if folds else holdout.result
    return {
        "config": config.to_dict(),
        "holdout": None if holdout.result.val is None else holdout.result.val.score,
        "folds": None if folded.val is None else folded.val.score,
        "test": None if full.result.test is None else full.result.test.score,
        "seconds": time.perf_counter() - start,
    }


def fidelity_row(name: str, seed: int, runs: list[dict[str, Any]],
                 validation: Validation) -> dict[str, object]:
    """rho of each short score with the full test score, and the test score each would pick."""
    row: dict[str, object] = {"task": name, "seed": seed, "configurations": len(runs),
                              "fold protocol": validation.describe()}
    measured = [r for r in runs if None not in (r["holdout"], r["folds"], r["test"])]
    tests = [r["test"] for r in measured]
    for column, label in (("holdout", "short hold-out"), ("folds", "short folds")):
        shorts = [r[column] for r in measured]
        rho = float(stats.spearmanr(shorts, tests).statistic) if len(measured) >= 3 else math.nan
        # undefined (-) with fewer than 3 configurations or when one side is constant
        row[f"rho ({label} vs full test)"] = f"{rho:+.2f}" if math.isfinite(rho) else "-"
        row[f"picked by {label}: test"] = (
            f"{tests[shorts.index(max(shorts))]:.3f}" if measured else "-")
    row["best test"] = f"{max(tests):.3f}" if tests else "-"
    row["default's test"] = f"{runs[0]['test']:.3f}" if runs and runs[0]["test"] is not None else "-"
    row["s per configuration"] = (f"{statistics.mean(r['seconds'] for r in runs):.0f}"
                                  if runs else "-")
    return row


def report(rows: list[dict[str, object]], args: argparse.Namespace, budget: str) -> None:
    write_report(
        "search_efficiency",
        f"Search efficiency at equal budget ({budget} per run): pruning on the alignment signal, "
        "median stopping, none, random search",
        rows,
        notes=f"Seeds: {args.seeds} (per seed, one run per row; cells list seeds in order). Every "
        f"run: cpu-small space, {args.workers} workers, top-2 promotion with 30% of the budget "
        "reserved, the same task split and seed. 'best full val score': the best validation "
        "score of a promoted, fully trained configuration (what orca-search reports as winner); "
        "'its test score': that winner on the test split. Spearman rho: over the finished short "
        "trials of the largest alignment group (same backbone, reference set and distance), "
        "between final alignment loss and validation score; negative means better alignment "
        "went with better scores (the pruner needs rho < 0 with one-sided p <= 0.1 over at "
        "least 5 trials before it prunes anything). Every search's summary, with the commit "
        "that produced it, is in search_runs.jsonl beside this table (shared with the quality "
        "benchmark); with --resume a call reuses the searches logged there for the same settings.",
        out_dir=Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
