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
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

from _report import OUT_DIR, paired_difference, summary, write_report
from _runs import RunLog
from _searching import SMOKE_OVERRIDES, fold_runs

from orca_automl.baselines import fit_baseline
from orca_automl.config import OrcaConfig, Stage
from orca_automl.cycle import evaluate, run_cycle
from orca_automl.search import (
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
    parser.add_argument("--tasks", nargs="+", default=["gunpoint", "breast_cancer", "digits"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny schedules (checks the script runs)")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    parser.add_argument("--winner-forms", action="store_true",
                        help="bag of fold models vs refit vs one train-split model (see above)")
    parser.add_argument("--validation", default="auto",
                        help="the fold protocol of --winner-forms (orca-search --validation)")
    parser.add_argument("--resume", action="store_true",
                        help="--winner-forms: reuse the runs logged beside the table")
    args = parser.parse_args()
    if args.winner_forms:
        return winner_forms(args)

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
            "out (digits under auto: over 500 samples) has no bag and is skipped. Every run "
            "is logged in winner_form_runs.jsonl beside this table; --resume reuses them.")


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
