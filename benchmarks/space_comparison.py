"""Does a search space end better than another? The quality benchmark's logged searches, side by side.

Reads the search runs that `benchmarks/quality.py` logged (one or more `search_runs.jsonl`,
each run keyed by task, seed, budget and the space file's name and contents) and compares
every space found there with a reference space on the seeds both ran: the test score of
the winner among the search's own models (not a baseline, whether or not baselines competed), mean ± std over seeds, the paired difference to the reference (seeds better / worse),
the trials each search ran and how often the engine's default configuration won. Nothing is
run: it only reads logs, so it is as reproducible as the runs it reads.

    python benchmarks/space_comparison.py --reference cpu-small.yaml@7c1d537a18d6 \\
        --logs docs/benchmarks/search_runs.jsonl docs/benchmarks/quality_extended/search_runs.jsonl \\
               docs/benchmarks/quality_label_aware/search_runs.jsonl
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

from _report import OUT_DIR, paired_difference, summary, write_report
from _searching import logged_searches, split_winners

#: The runs that are comparable: the quality benchmark's own search settings.
SETTINGS = {"run": "search", "workers": 2, "sampler": "tpe", "pruning": "all"}


def read_runs(logs: list[Path], budget: str, validation: str) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
    """{space: {(task, seed): result}} of the logged searches with the given settings; a run
    logged twice (a log copied into another folder) counts once, the later one."""
    wanted = {**SETTINGS, "budget": budget, "validation": validation}
    runs: dict[str, dict[tuple[str, int], dict[str, Any]]] = defaultdict(dict)
    for key, result in logged_searches(logs, wanted):
        # a space is judged by the search's own models, whether or not baselines competed
        result = {**result, "test": split_winners(result)[0]}
        if result["test"] is not None:
            runs[key["space"]][(key["task"], int(key["seed"]))] = result
    return dict(runs)


def compare(runs: dict[str, dict[tuple[str, int], dict[str, Any]]],
            reference: str) -> list[dict[str, object]]:
    """One row per task and space: the space's scores, and against the reference on shared seeds."""
    if reference not in runs:
        raise SystemExit(f"no logged search of the reference space {reference!r}; "
                         f"logged spaces: {', '.join(sorted(runs)) or 'none'}")
    tasks = list(dict.fromkeys(task for (task, _) in runs[reference]))
    rows: list[dict[str, object]] = []
    for task in tasks:
        base = {seed: r for (t, seed), r in runs[reference].items() if t == task}
        for space in [reference, *sorted(s for s in runs if s != reference)]:
            mine = {seed: r for (t, seed), r in runs[space].items() if t == task}
            if not mine:
                continue
            seeds = sorted(mine)
            shared = [s for s in seeds if s in base]
            rows.append({
                "task": task,
                "space": space,
                "seeds": " ".join(map(str, seeds)),
                "test": summary([mine[s]["test"] for s in seeds]),
                "per seed": ", ".join(f"{mine[s]['test']:.3f}" for s in seeds),
                "reference on the same seeds": summary([base[s]["test"] for s in shared]),
                "difference (seeds better / worse)": "-" if space == reference else
                paired_difference([(mine[s]["test"], base[s]["test"]) for s in shared]),
                "trials short+full": ", ".join(f"{mine[s]['short']}+{mine[s]['full']}" for s in seeds),
                "default won": f"{sum(bool(mine[s].get('winner_is_default')) for s in seeds)} / {len(seeds)}",
                "code": " ".join(sorted({str(mine[s].get("code", "?")) for s in seeds})),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", nargs="+", type=Path, required=True,
                        help="search_runs.jsonl files written by benchmarks/quality.py")
    parser.add_argument("--reference", required=True,
                        help="the space the others are compared with, as logged: FILE@SHA12")
    parser.add_argument("--budget", default="15cpu-minutes")
    parser.add_argument("--validation", default="auto")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    rows = compare(read_runs(args.logs, args.budget, args.validation), args.reference)
    write_report(
        "space_comparison", "Search spaces compared: the quality benchmark's searches", rows,
        notes=(f"Searches of {args.budget}, validation `{args.validation}`, TPE, all pruning "
               "rules, 2 workers, as `benchmarks/quality.py` runs them; test score of each "
               "search's winner among its own models (baselines left out). `difference`: the space minus the reference on the seeds both "
               "ran (one test sample is 0.007 on GunPoint, 0.001 on ItalyPowerDemand, 0.025 on "
               "BasicMotions). `code`: the commit each run was measured at; runs at different "
               "commits may come from machines of different speed, which changes how many "
               "trials a budget buys."),
        out_dir=args.out)


if __name__ == "__main__":
    main()
