"""Does alignment help? Does pretraining? Test scores of ORCA's recipe and its controls.

For each task and seed: align + refine (the default config), refine without alignment
(align.metric none), the same architecture from random weights (with alignment), and
1-NN Euclidean on the normalised inputs as the floor. Mean and spread over seeds.

    python benchmarks/ablation.py --tasks gunpoint breast_cancer digits --seeds 0 1 2
    python benchmarks/ablation.py --tasks gunpoint --seeds 0 --smoke      # tiny, for CI

With --winner-forms it answers another question instead (table winner_form.md): once the
search has chosen a configuration under cross-validation, what should it serve? For ORCA's
default configuration: the bag of its K fold models (their averaged predictions), one model
refit on all development data (`orca-search --refit`, as AutoGluon's refit_full), and, for
reference, one model trained on the training split alone (what `orca-train` does). Test
score, device seconds and inference cost of each, from the same fold runs.

    python benchmarks/ablation.py --winner-forms --tasks italy_power_demand diabetes breast_cancer gunpoint basic_motions --seeds 0 --resume

With --options it measures each searchable option of the engine against ORCA's default
(table ablation_options.md): per task and seed, the option's configuration runs the fold
protocol of `--validation` at the `--stage` schedule (a bag of fold models under
cross-validation, one model on a hold-out split), and the table gives its test score, the
difference to the default on the same folds, and device seconds per trial (all its folds),
i.e. how many such trials a budget buys. Every run is logged; --resume reuses them.

    python benchmarks/ablation.py --options --stage short --seeds 0 1 2 --resume
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from _report import OUT_DIR, paired_difference, summary, write_report
from _runs import RunLog
from _searching import SMOKE_OVERRIDES, fold_runs

from orca_automl.baselines import fit_baseline
from orca_automl.config import OrcaConfig, Stage
from orca_automl.cycle import evaluate, run_cycle
from orca_automl.search import (
    AUTO_CV_BELOW,
    CycleRunner,
    TrialRequest,
    Validation,
    combine_runs,
    execute_trial,
    parse_validation,
)
from orca_automl.tasks import Task, load_task, metric_for

VARIANTS: dict[str, dict[str, Any]] = {
    "align + refine": {},
    "refine only (no alignment)": {"align.metric": "none"},
    "random body (align + refine)": {"model.pretrained": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="default: gunpoint breast_cancer digits; the six quality tasks "
                        "with --options")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny schedules (checks the script runs)")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    parser.add_argument("--winner-forms", action="store_true",
                        help="bag of fold models vs refit vs one train-split model (see above)")
    parser.add_argument("--validation", default="auto",
                        help="the fold protocol of --winner-forms (orca-search --validation)")
    parser.add_argument("--resume", action="store_true",
                        help="--winner-forms: reuse the runs logged beside the table")
    parser.add_argument("--options", action="store_true",
                        help="each searchable option against the default (see above)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="--options: measure only these options (names as in the table)")
    parser.add_argument("--stage", choices=["short", "full"], default="full",
                        help="--options: the schedule each configuration runs")
    parser.add_argument("--table-only", action="store_true",
                        help="--options: write the table from the logged runs only (a seed's "
                             "missing runs count as not run), computing nothing")
    parser.add_argument("--time-seeds", type=int, nargs="+", metavar="SEED",
                        help="--options: the seeds whose device seconds the time ratios use "
                             "(default: all), e.g. those run on an otherwise idle machine")
    args = parser.parse_args()
    args.tasks = args.tasks or (QUALITY_TASKS if args.options else
                                ["gunpoint", "breast_cancer", "digits"])
    if args.winner_forms:
        return winner_forms(args)
    if args.options:
        return options(args)

    rows = []
    for name in args.tasks:
        scores: dict[str, list[float]] = {v: [] for v in VARIANTS}
        seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
        knn: list[float] = []
        metric = ""
        for seed in args.seeds:
            task = load_task(name, seed=seed)
            knn.append(metric_for(task.task_type)(task.test.y,
                                                  fit_baseline("one_nn", task, seed).test))
            for variant, overrides in VARIANTS.items():
                cfg = OrcaConfig().with_overrides({**overrides, "seed": seed})
                if args.smoke:
                    cfg = cfg.with_overrides(SMOKE_OVERRIDES)
                start = time.perf_counter()
                result = run_cycle(task, cfg)
                test = evaluate(result.model, task, "test")
                metric = test.metric
                scores[variant].append(test.value)
                seconds[variant].append(time.perf_counter() - start)
                print(f"{name} seed {seed} {variant}: test {metric} {test.value:.4f} "
                      f"({seconds[variant][-1]:.0f} s)", flush=True)
        row: dict[str, object] = {"task": name, "metric": metric}
        row.update({v: summary(s) for v, s in scores.items()})
        row["1-NN Euclidean"] = summary(knn)
        row["s / run (align + refine)"] = f"{statistics.mean(seconds['align + refine']):.0f}"
        rows.append(row)

    write_report(
        "ablation",
        "Alignment and pretraining ablation (test scores, mean ± std over seeds)",
        rows,
        notes=f"Seeds: {args.seeds}. Each seed re-draws the validation split and the initialisation. "
        "Default configuration (`OrcaConfig()`): packaged MiniLM for 1D/tabular, packaged "
        "EfficientNet-Lite0 for 2D, OTDD (Gaussian) alignment.",
        out_dir=Path(args.out) if args.out else None,
    )


def winner_forms(args: argparse.Namespace) -> None:
    """The --winner-forms table: what a cross-validated search should serve."""
    out = Path(args.out) if args.out else OUT_DIR
    log = RunLog(out / "winner_form_runs.jsonl", reuse=args.resume)
    rows: list[dict[str, object]] = []
    for name in args.tasks:
        results: list[dict[str, Any]] = []
        validation = ""
        for seed in args.seeds:
            task = load_task(name, seed=seed)
            folds = parse_validation(args.validation, len(task.train) + len(task.val), seed)
            validation = folds.describe()
            if not folds.cross_validated:  # no folds, no bag: nothing to compare
                print(f"{name} seed {seed}: skipped, `--validation {args.validation}` is "
                      f"{validation} here (ask for cv:K to measure it)", flush=True)
                continue
            cfg = OrcaConfig().with_overrides({"seed": seed})
            if args.smoke:
                cfg = cfg.with_overrides(SMOKE_OVERRIDES)
            key = {"task": name, "seed": seed, "validation": args.validation,
                   "smoke": args.smoke}
            found = log.run(key, partial(serve_forms, task, cfg, folds))
            results.append(found)
            print(f"{name} seed {seed}: " + ", ".join(
                f"{form} {found[form]['test']:.4f} ({found[form]['seconds']:.0f} s)"
                for form in FORMS), flush=True)
        if not results:
            continue
        row: dict[str, object] = {"task": name, "metric": results[0]["metric"],
                                  "folds": validation}
        for form, label in FORMS.items():
            row[f"{label}: test"] = summary([r[form]["test"] for r in results])
        row["refit - bag (seeds better / worse)"] = paired_difference([
            (r["refit"]["test"], r["bag"]["test"]) for r in results])
        for form, label in FORMS.items():
            row[f"{label}: device s"] = f"{statistics.mean(r[form]['seconds'] for r in results):.0f}"
        for form, label in FORMS.items():
            row[f"{label}: GFLOPs"] = f"{statistics.mean(r[form]['cost'] for r in results):.3g}"
        rows.append(row)
        write_report(
            "winner_form",
            "What a cross-validated search should serve: a bag of fold models or one refit model",
            rows, out_dir=out,
            notes=f"Seeds: {args.seeds} (each re-draws the validation split, the folds and "
            "every initialisation; test sets are fixed). ORCA's default configuration "
            "(`OrcaConfig()`), full schedule. bag: the K fold models (each trained without "
            "its fold), their test predictions averaged, as `orca-search --validation auto` "
            "serves a winner; its cost: the K fold runs. refit: one model trained on all "
            "training + validation data, keeping its final checkpoint (`orca-search "
            "--refit`); its device seconds are its own run only (the search runs the folds "
            "too, to score it). train split: one model trained on the training split alone "
            "with the checkpoint chosen on the validation split (`orca-train`). GFLOPs: "
            "inference cost per sample (a bag runs all K models). A task the protocol holds "
            f"out (under auto: {AUTO_CV_BELOW} samples or more) has no bag and is skipped. Every run "
            "is logged in winner_form_runs.jsonl beside this table; --resume reuses them.")


#: The quality benchmark's six tasks.
QUALITY_TASKS = ["gunpoint", "italy_power_demand", "basic_motions", "digits", "breast_cancer",
                 "diabetes"]

#: Each searchable option as config overrides on ORCA's default ("default": none).
OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "scope: top 2 blocks + norms": {"refine.scope": "top", "refine.top_blocks": 2},
    "scope: norms + biases": {"refine.scope": "norms"},
    "scope: frozen body": {"refine.scope": "frozen"},
    "scope: LoRA r8": {"refine.scope": "lora", "refine.lora_rank": 8},
    "layer decay 0.7": {"refine.layer_decay": 0.7},
    "augment 0.5": {"refine.augment": 0.5},
    "per-sample norm": {"model.embedder_args.instance_norm": True},
    "bridge 0.3": {"refine.bridge": 0.3},
    "label-aware align 1.0": {"align.label_weight": 1.0},
    "bf16 refine": {"refine.precision": "bf16"},
    "16 tokens": {"model.embedder_args.target_seq_len": 16},
}


def options(args: argparse.Namespace) -> None:
    """The --options table: every searchable option against the default, fold protocol."""
    out = Path(args.out) if args.out else OUT_DIR
    log = RunLog(out / "ablation_options_runs.jsonl", reuse=args.resume)
    tasks = args.tasks
    names = [n for n in OPTIONS if args.only is None or n in args.only or n == "default"]
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for seed in args.seeds:
        for name in tasks:
            task = load_task(name, seed=seed)
            folds = parse_validation(args.validation, len(task.train) + len(task.val), seed)
            if not args.table_only:
                warm_up(task, args.smoke)
            for option in names:
                key = {"task": name, "seed": seed, "option": OPTIONS[option],
                       "validation": args.validation, "stage": args.stage, "smoke": args.smoke}
                cfg = OrcaConfig().with_overrides({"seed": seed})
                if args.smoke:
                    cfg = cfg.with_overrides(SMOKE_OVERRIDES)
                if args.table_only:
                    logged = log.get(key)
                    if logged is None:
                        continue
                    r = logged
                else:
                    r = log.run(key, partial(option_run, task, cfg, OPTIONS[option], folds,
                                             Stage(args.stage)))
                found[(name, option, seed)] = r
                shown = "n/a: " + r["error"] if r.get("error") else (
                    f"test {r['test']:.4f}, {r['seconds']:.0f} s")
                print(f"{name} seed {seed} {option}: {shown}", flush=True)
            write_options_table(found, tasks, names, args, out)


def warm_up(task: Task, smoke: bool) -> None:
    """One step of the default on `task`, unmeasured: the backbone's reference features get
    cached and the process warm, so the first option measured pays no more than the last."""
    cfg = OrcaConfig().with_overrides(
        {"align.steps": 1, "refine.steps": 1, "refine.eval_every": 1})
    run_cycle(task, cfg.with_overrides(SMOKE_OVERRIDES) if smoke else cfg)


def option_run(task: Task, cfg: OrcaConfig, overrides: dict[str, Any], validation: Validation,
               stage: Stage) -> dict[str, Any]:
    """One option on one task and seed: the test score of its bag of fold models (the folds
    `validation` runs at `stage`; one model on a hold-out split), its mean validation score
    and its device seconds over those runs; `error` when it does not apply. Test data is
    scored here for the table only; the search itself never scores a short run on it."""
    from orca_automl.cycle import evaluate_with_predictions
    from orca_automl.errors import OrcaInputError

    try:
        config = cfg.with_overrides(overrides)
        parts = ([task.fold(i, validation.folds, validation.seed)
                  for i in validation.folds_of(stage)]
                 if validation.cross_validated else [task])
        results = [run_cycle(part, config, schedule=stage) for part in parts]
    except OrcaInputError as exc:
        return {"error": str(exc)}
    tests = [evaluate_with_predictions(r.model, part, "test") for r, part in zip(results, parts, strict=True)]
    metric = metric_for(task.task_type)
    bag = np.mean([predictions for _, predictions in tests], axis=0)
    return {"metric": metric.name, "test": float(metric(task.test.y, bag)),
            "val": statistics.mean(r.val.score for r in results),
            "seconds": sum(r.device_seconds for r in results), "cost": results[0].cost,
            "runs": len(results)}


def write_options_table(found: dict[tuple[str, str, int], dict[str, Any]], tasks: list[str],
                        names: list[str], args: argparse.Namespace, out: Path) -> None:
    """One row per option: per task the test score (mean over seeds) and its difference to
    the default on the same seeds; then device seconds per trial against the default's."""
    rows: list[dict[str, object]] = []
    for option in names:
        row: dict[str, object] = {"option": option}
        ratios = []
        for name in tasks:
            pairs, scores = [], []
            for seed in args.seeds:
                r, d = found.get((name, option, seed)), found.get((name, "default", seed))
                if r is None or r.get("error") or d is None or d.get("error"):
                    continue
                scores.append(r["test"])
                pairs.append((r["test"], d["test"]))
                if args.time_seeds is None or seed in args.time_seeds:
                    ratios.append(r["seconds"] / d["seconds"])
            if not scores:
                row[name] = "n/a"
            elif option == "default":
                row[name] = summary(scores)
            else:
                row[name] = f"{summary(scores)} ({paired_difference(pairs)})"
        row["device s / trial vs default"] = (
            f"{statistics.mean(ratios):.2f}x" if ratios else "n/a")
        rows.append(row)
    seconds = [r["seconds"] for (_, o, seed), r in found.items() if o == "default" and "seconds" in r
               and (args.time_seeds is None or seed in args.time_seeds)]
    timed = ("" if args.time_seeds is None else
             f" Device seconds are those of seeds {args.time_seeds} only (the seeds run on an "
             "otherwise idle machine; the others ran beside other work, their scores are "
             "unaffected).")
    typical = f" (the default: {statistics.mean(seconds):.0f} s per trial on average)" if seconds else ""
    write_report(
        "ablation_options",
        "Each searchable option against ORCA's default (test scores, fold protocol)",
        rows, out_dir=out,
        notes=f"Seeds: {args.seeds}; validation `{args.validation}`; `{args.stage}` schedule"
        f"{' (SMOKE: tiny schedules)' if args.smoke else ''}. Each cell: the option's test "
        "score, mean ± std over seeds, and in brackets its difference to the default on the "
        "same seeds and folds (seeds better / worse). Under cross-validation a "
        "configuration is the bag of its fold models (the folds the search runs at that "
        "schedule), on a hold-out split one model. Device seconds: all of a trial's folds, "
        "as the budget charges them; their ratio to the default's, averaged over tasks and "
        f"seeds, says how many more (< 1x) or fewer trials the same budget buys{typical}. "
        f"n/a: the option does not apply to the task's embedder or backbone.{timed}")


#: The forms compared, and their column labels.
FORMS = {"bag": "bag of fold models", "refit": "refit on all data", "single": "train split only"}


def serve_forms(task: Task, cfg: OrcaConfig, validation: Validation) -> dict[str, Any]:
    """Test score, device seconds and inference cost of each form, for one task and seed."""
    runner = CycleRunner()
    folds = fold_runs(runner, task, cfg, validation, Stage.FULL)
    refit = execute_trial(runner, TrialRequest(0, Stage.FULL, cfg, refit=True), task)
    single = execute_trial(runner, TrialRequest(0, Stage.FULL, cfg), task)
    bag = combine_runs(folds, task).result
    forms = {"bag": bag, "refit": refit.result, "single": single.result}
    for form, result in forms.items():
        if result.error is not None or result.test is None:
            raise RuntimeError(f"{form}: {result.error}")
    return {"metric": bag.test.metric if bag.test else "",
            **{form: {"test": result.test.value if result.test else None,
                      "seconds": result.device_seconds, "cost": result.cost}
               for form, result in forms.items()}}


if __name__ == "__main__":
    main()
