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
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from _report import OUT_DIR, summary, write_report  # benchmarks/ is on sys.path as a script
from _runs import RunLog
from _searching import logged_search, smoke_space

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
    args = parser.parse_args()
    budget = "30s" if args.smoke else args.budget
    modes = [m for m in MODES if f"{m[2]}/{m[1]}" in args.modes]
    if args.smoke:  # the default and random search
        modes = [m for m in modes if m[1:] in (("tpe", "all"), ("random", "off"))]

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
