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
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _report import summary, write_report  # benchmarks/ is on sys.path when run as a script
from _searching import SearchRun, run_search, smoke_space
from optuna.trial import TrialState
from scipy import stats

from orca_automl.search._pruning import alignment_group

#: (row label, --sampler, --pruning)
MODES = (
    ("TPE, alignment + median pruning", "tpe", "all"),
    ("TPE, median pruning only", "tpe", "refine"),
    ("TPE, no pruning", "tpe", "off"),
    ("random search, no pruning", "random", "off"),
)


def pruned_by(run: SearchRun) -> tuple[int, int]:
    """(pruned on alignment loss, pruned by median stopping) among short trials."""
    reasons = [str(r.attrs.get("pruned_reason", "")) for r in run.records
               if r.stage == "short" and r.state == TrialState.PRUNED]
    by_alignment = sum(reason.startswith("final alignment loss") for reason in reasons)
    return by_alignment, len(reasons) - by_alignment


def rank_correlation(run: SearchRun) -> tuple[float | None, int, str]:
    """Spearman rho (loss vs. validation score) in the largest alignment group: (rho, n, group)."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in run.records:
        if r.stage != "short" or r.state != TrialState.COMPLETE or not r.config:
            continue
        group = alignment_group(r.config)
        if group and r.final_align_loss is not None and r.val_score is not None:
            groups[group].append((r.final_align_loss, r.val_score))
    if not groups:
        return None, 0, "-"
    group, pairs = max(groups.items(), key=lambda item: len(item[1]))
    if len(pairs) < 3:
        return None, len(pairs), group
    rho = float(stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic)
    return (rho if math.isfinite(rho) else None), len(pairs), group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["gunpoint", "italy_power_demand"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget", default="10cpu-minutes", help="orca-search budget per run")
    parser.add_argument("--workers", type=int, default=2, help="orca-search --workers")
    parser.add_argument("--modes", nargs="+", choices=[m[2] + "/" + m[1] for m in MODES],
                        default=[m[2] + "/" + m[1] for m in MODES],
                        help="which runs (pruning/sampler), e.g. --modes all/tpe off/tpe off/random")
    parser.add_argument("--smoke", action="store_true", help="tiny schedules (checks the script runs)")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    budget = "30s" if args.smoke else args.budget
    modes = [m for m in MODES if f"{m[2]}/{m[1]}" in args.modes]
    if args.smoke:  # the default and random search
        modes = [m for m in modes if m[1:] in (("tpe", "all"), ("random", "off"))]

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        space = smoke_space(Path(scratch)) if args.smoke else None
        for name in args.tasks:
            for label, sampler, pruning in modes:
                cells: dict[str, list[float]] = defaultdict(list)
                counts: list[str] = []
                rhos: list[str] = []
                for seed in args.seeds:
                    start = time.perf_counter()
                    run = run_search(name, budget, seed, Path(scratch) / f"{name}-{pruning}-{sampler}-{seed}",
                                     workers=args.workers, sampler=sampler, pruning=pruning,
                                     search_space=space)
                    winner = run.winner
                    if winner is not None and winner.val_score is not None:
                        cells["val"].append(winner.val_score)
                    if run.winner_test is not None:
                        cells["test"].append(run.winner_test)
                    by_alignment, by_median = pruned_by(run)
                    counts.append(f"{run.count('short')} / {run.count('short', TrialState.COMPLETE)} / "
                                  f"{by_alignment} / {by_median} / {run.count('full', TrialState.COMPLETE)}")
                    cells["spent"].append(sum(r.device_seconds or 0.0 for r in run.records))
                    rho, n, group = rank_correlation(run)
                    rhos.append(f"{rho:+.2f} (n={n})" if rho is not None else f"- (n={n})")
                    print(f"{name} seed {seed} {label}: {counts[-1]}, best full val "
                          f"{cells['val'][-1] if cells['val'] else None}, rho {rhos[-1]} in '{group}' "
                          f"({time.perf_counter() - start:.0f} s)", flush=True)
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
        "least 5 trials before it prunes anything).",
        out_dir=Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
