"""Does a budgeted orca-search beat what users would otherwise do? Test scores per task.

For each task and seed, on the same splits: the winner of `orca-search --budget B` under each
validation protocol asked for (its test score as the search recorded it; `--validations auto
holdout` compares cross-validated trials with the hold-out split),
ORCA's default configuration without search (align + refine), refine without alignment, the
same architecture from random weights, the classical method of the field (MiniRocket for time
series, a tuned RBF SVM for images, tuned HistGradientBoosting for tables; see
orca_automl.baselines) and 1-NN. Mean and spread over seeds.

    python benchmarks/quality.py --budget 15cpu-minutes --seeds 0 1 2 --validations auto holdout
    python benchmarks/quality.py --tasks gunpoint --seeds 0 --smoke     # tiny, for CI
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from _report import OUT_DIR, paired_difference, summary, write_report
from _runs import RunLog
from _searching import SMOKE_OVERRIDES, logged_search, smoke_space, split_winners

from orca_automl.baselines import BASELINES, field_baselines, fit_baseline
from orca_automl.config import OrcaConfig
from orca_automl.cycle import evaluate, run_cycle
from orca_automl.search import AUTO_CV_BELOW
from orca_automl.tasks import TASKS as TASK_REGISTRY
from orca_automl.tasks import Task, load_task, metric_for

#: The tasks of the table and the kind of data each stands for.
TASKS = {
    "gunpoint": "1D, 1 channel",
    "italy_power_demand": "1D, 1 channel",
    "basic_motions": "1D, 6 channels",
    "digits": "2D image",
    "breast_cancer": "tabular",
    "diabetes": "tabular regression",
}

#: ORCA without search, and its two controls (overrides of the default OrcaConfig).
VARIANTS: dict[str, dict[str, Any]] = {
    "ORCA default": {},
    "no alignment": {"align.metric": "none"},
    "random body": {"model.pretrained": False},
}

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASK_REGISTRY.names(),
                        help="default: the table's six; any built-in task may be measured the "
                        "same way, e.g. one the defaults were never chosen on")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", default="15cpu-minutes", help="orca-search budget per task and seed")
    parser.add_argument("--workers", type=int, default=2, help="orca-search --workers")
    parser.add_argument("--validations", nargs="+", default=["auto"], metavar="PROTOCOL",
                        help="orca-search --validation of each search row (default: auto)")
    parser.add_argument("--neural-seeds", type=int, default=None, metavar="N",
                        help="run the search and ORCA's variants on the first N seeds only (the "
                             "baselines run on every seed); default: all")
    parser.add_argument("--search-space", default=None, metavar="SPACE",
                        help="orca-search --search-space (default cpu-small); runs are logged "
                        "under the space file's contents, so two spaces never share a run")
    parser.add_argument("--smoke", action="store_true", help="tiny schedules (checks the script runs)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the runs logged beside the table for the same settings "
                             "(an interrupted call, or more seeds); default: measure everything")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    neural_seeds = args.seeds[: args.neural_seeds] if args.neural_seeds else args.seeds
    budget = "40s" if args.smoke else args.budget
    # Every finished run is logged beside the table: with --resume a cut-short benchmark resumes,
    # and a later call with more seeds adds them instead of redoing the others.
    out_dir = Path(args.out) if args.out else OUT_DIR
    runs = RunLog(out_dir / "quality_runs.jsonl", reuse=args.resume)
    searches = RunLog(out_dir / "search_runs.jsonl", reuse=args.resume)  # shared with search_efficiency.py

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        space = smoke_space(Path(scratch)) if args.smoke else args.search_space
        for name in args.tasks:
            protocols = list(args.validations)
            scores: dict[str, list[float]] = {
                k: [] for k in (*protocols, *VARIANTS, "classical", "1-NN", "classical refit",
                                "1-NN refit")}
            with_baselines: dict[str, list[float]] = {v: [] for v in protocols}
            own_models: dict[str, list[float]] = {v: [] for v in protocols}
            explored: dict[str, list[str]] = {v: [] for v in protocols}
            per_seed: dict[str, list[str]] = {v: [] for v in protocols}
            found_tests: dict[str, list[float | None]] = {v: [] for v in protocols}
            configs, seconds, defaults = [], [], []
            method, metric = "", ""
            for seed in args.seeds:
                task = load_task(name, seed=seed)
                base = runs.run({"task": name, "seed": seed, "run": "baselines"},
                                partial(baselines_result, task, seed))
                method = base["method"]
                scores["classical"].append(base["value"])
                scores["1-NN"].append(base["1-NN"])
                refitted = runs.run({"task": name, "seed": seed, "run": "baselines refit"},
                                    partial(baselines_result, task, seed, refit=True))
                scores["classical refit"].append(refitted["value"])
                scores["1-NN refit"].append(refitted["1-NN"])
                print(f"{name} seed {seed}: {method} {base['value']:.4f}, 1-NN {base['1-NN']:.4f}",
                      flush=True)
                if seed not in neural_seeds:
                    continue
                for protocol in protocols:
                    found = logged_search(searches, name, budget, seed, Path(scratch),
                                          workers=args.workers, search_space=space,
                                          validation=protocol)
                    test = found["test"]
                    per_seed[protocol].append("-" if test is None else f"{test:.3f}")
                    found_tests[protocol].append(test)
                    if test is not None:
                        scores[protocol].append(test)
                    own, competing = split_winners(found)
                    if own is not None:
                        own_models[protocol].append(own)
                    if competing is not None:
                        with_baselines[protocol].append(competing)
                    explored[protocol].append(f"{found['short']}+{found['full']}")
                    if protocol == protocols[0]:
                        configs.append(found["config"])
                    print(f"{name} seed {seed}: search ({protocol}) winner test {test} "
                          f"({found['seconds']:.0f} s, {explored[protocol][-1]} trials, "
                          f"default won: {found.get('winner_is_default')}): {found['config']}; "
                          f"own models only: {own}, baselines competing: {competing}",
                          flush=True)
                for variant, overrides in VARIANTS.items():
                    cfg = OrcaConfig().with_overrides({**overrides, "seed": seed})
                    if args.smoke:
                        cfg = cfg.with_overrides(SMOKE_OVERRIDES)
                    result = runs.run({"task": name, "seed": seed, "run": variant,
                                       "smoke": args.smoke},
                                      partial(variant_result, task, cfg))
                    metric = result["metric"]
                    scores[variant].append(result["test"])
                    if variant == "ORCA default":
                        seconds.append(result["seconds"])
                        defaults.append(result["test"])
                    print(f"{name} seed {seed} {variant}: test {metric} {result['test']:.4f} "
                          f"({result['seconds']:.0f} s)", flush=True)
            data = TASKS.get(name, f"{task.modality} {task.task_type}, not among the six")
            row: dict[str, object] = {"task": name, "data": data, "metric": metric}
            for protocol in protocols:
                row[f"orca-search {protocol} ({budget})"] = summary(scores[protocol])
                row[f"{protocol}, baselines may win"] = summary(with_baselines[protocol])
                row[f"{protocol}, ORCA models only"] = summary(own_models[protocol])
            row.update({v: summary(scores[v]) for v in VARIANTS})
            row["classical method"] = method
            row["classical"] = summary(scores["classical"])
            row["1-NN"] = summary(scores["1-NN"])
            row["classical, refit on train + val"] = summary(scores["classical refit"])
            row["1-NN, refit on train + val"] = summary(scores["1-NN refit"])
            row["neural seeds"] = len(neural_seeds)
            for protocol in protocols:
                pairs = [(t, d) for t, d in zip(found_tests[protocol], defaults, strict=False)
                         if t is not None]
                row[f"{protocol}: per seed"] = ", ".join(per_seed[protocol])
                row[f"{protocol} - default (seeds better / worse)"] = paired_difference(pairs)
                row[f"{protocol}: trials (short+full)"] = ", ".join(explored[protocol])
            row["s / default run"] = f"{statistics.mean(seconds):.0f}" if seconds else "-"
            row["winning configuration (seed " + str(neural_seeds[0]) + ")"] = configs[0] if configs else "-"
            rows.append(row)
            report(rows, args, neural_seeds)  # after every task: a long run keeps what it measured


def baselines_result(task: Task, seed: int, refit: bool = False) -> dict[str, object]:
    """The classical method of the task's field and 1-NN, on the same splits; with `refit`,
    each fitted once more on training + validation data with what it chose."""
    classical = field_baselines(task)[0]  # the field's own method comes before 1-NN
    return {"method": BASELINES.info(classical).display_name,
            "value": baseline_test_score(classical, task, seed, refit),
            "1-NN": baseline_test_score("one_nn", task, seed, refit)}


def baseline_test_score(name: str, task: Task, seed: int, refit: bool = False) -> float:
    """The task's metric on a baseline's test predictions."""
    result = fit_baseline(name, task, seed, refit=refit)
    return metric_for(task.task_type)(task.test.y, result.test)


def variant_result(task: Task, cfg: OrcaConfig) -> dict[str, object]:
    """One align + refine run of `cfg`: its test score."""
    start = time.perf_counter()
    test = evaluate(run_cycle(task, cfg).model, task, "test")
    return {"test": test.value, "metric": test.metric,
            "seconds": time.perf_counter() - start}


def report(rows: list[dict[str, object]], args: argparse.Namespace, neural_seeds: list[int]) -> None:
    write_report(
        "quality",
        "Test scores: orca-search winner vs ORCA without search, its controls, and classical methods",
        rows,
        notes=f"Seeds: {args.seeds} (search and ORCA variants on seeds {neural_seeds}; each seed "
        "re-draws the validation split and every initialisation; test sets are fixed). orca-search: "
        f"{'a tiny smoke' if args.smoke else (args.search_space or 'cpu-small')} space, {args.workers} workers, TPE sampler, all pruning rules, "
        "validation protocols as in the columns (auto: 5-fold cross-validation below "
        f"{AUTO_CV_BELOW} training + validation samples, short trials on 2 folds, winners are bags of 5 fold "
        "models; holdout: the validation split), the field's baselines scored in each study on "
        "the budget; the engine's default is promoted first; the incumbent, the best validated "
        "baseline where baselines compete (the default replaces it only by beating it beyond "
        "noise) and the default otherwise, stays the winner unless a challenger beats it beyond "
        "noise (90% paired bootstrap), then top-2 promotion and a greedy ensemble of the full "
        "runs (a winner candidate under the same rule, on cross-fitted predictions). 'baselines "
        "may win': the winner rule with the baselines, and a greedy ensemble that may use them, "
        "competing too; 'ORCA models only': without them. Runs logged since baselines compete "
        "serve the first (orca-search column = 'baselines may win'); earlier runs served the "
        "second and measured the first in the study. ORCA default: `OrcaConfig()` (packaged MiniLM for 1D/tabular, "
        "EfficientNet-Lite0 for 2D, OTDD-Gaussian alignment, 400 refine steps). Random body: the "
        "same, from random weights. Baselines see the same splits: train to fit, validation to "
        "tune, test once (orca_automl.baselines); 'refit on train + val': the same, then fitted "
        "once more with what it chose on training and validation data together, as "
        "GridSearchCV does (a search's bag of fold models learns from both too). Metric: accuracy, or R² for regression. "
        "Every run's result, with the commit that produced it, is logged beside this table "
        "(searches in search_runs.jsonl, shared with the search-efficiency benchmark; the rest "
        "in quality_runs.jsonl); with --resume a call reuses the runs logged for the same task, "
        "seed, budget and search space.",
        out_dir=Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
