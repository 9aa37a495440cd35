"""Does alignment help? Does pretraining? Test scores of ORCA's recipe and its controls.

For each task and seed: align + refine (the default config), refine without alignment
(align.metric none), the same architecture from random weights (with alignment), and
1-NN Euclidean on the normalised inputs as the floor. Mean and spread over seeds.

    python benchmarks/ablation.py --tasks gunpoint breast_cancer digits --seeds 0 1 2
    python benchmarks/ablation.py --tasks gunpoint --seeds 0 --smoke      # tiny, for CI
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from _report import summary, write_report

from orca_automl.baselines import fit_baseline
from orca_automl.config import OrcaConfig
from orca_automl.cycle import evaluate, run_cycle
from orca_automl.tasks import load_task, metric_for

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
    args = parser.parse_args()

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
                    cfg = cfg.with_overrides({"align.steps": 2, "refine.steps": 4,
                                              "refine.eval_every": 2, "align.source_samples": 100})
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


if __name__ == "__main__":
    main()
