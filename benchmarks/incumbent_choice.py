"""Which incumbent should the winner rule start from: the engine default, or the field's method?

For each search the quality benchmark logged (task, seed; cpu-small, 15 cpu-minutes, `auto`
validation by default), this reads the engine default's full run (validation score over its
folds and the test score of its bag) and fits the field's classical method on the same folds
as the search did (`orca_automl.search` scores baselines the same way: a bag of fold models,
its validation score the mean over folds), then shows which of the two the higher validation
score picks (an exact tie to the classical method), the picked model's test score against the
default's, and the classical method's test score against the default's whatever the validation
said. The search's rule was that comparison until this table showed it misleads; it now makes
the classical method the incumbent the default must beat beyond noise (a paired bootstrap on
both out-of-fold predictions, which the logs do not hold). Only the classical method is
refitted (seconds); nothing else runs.

    python benchmarks/incumbent_choice.py --logs docs/benchmarks/search_runs.jsonl \\
        --space cpu-small.yaml@7c1d537a18d6
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

from _report import OUT_DIR, paired_difference, summary, write_report
from _searching import logged_searches

SETTINGS = {"run": "search", "workers": 2, "sampler": "tpe", "pruning": "all"}


def logged_defaults(logs: list[Path], space: str, budget: str,
                    validation: str) -> dict[tuple[str, int], tuple[float, float]]:
    """{(task, seed): (default's full validation score, its test score)} of the logged
    searches with these settings (the later line of a run logged twice)."""
    wanted = {**SETTINGS, "space": space, "budget": budget, "validation": validation}
    found: dict[tuple[str, int], tuple[float, float]] = {}
    for key, result in logged_searches(logs, wanted):
        default = [run for run in result.get("full_runs", ())
                   if result.get("default_test") is not None and run[2] == result["default_test"]]
        if default and default[0][1] is not None:
            found[(key["task"], int(key["seed"]))] = (default[0][1], result["default_test"])
    return found


def classical_bag(task_name: str, seed: int, validation: str) -> tuple[str, float, float]:
    """(name, validation score, test score) of the field's classical method fitted on the
    search's folds of `task_name` at `seed`, as the search scores it."""
    from orca_automl.baselines import field_baselines, fit_baseline
    from orca_automl.search._baselines import _fit_on_protocol
    from orca_automl.search._validation import parse_validation
    from orca_automl.tasks import load_task

    task = load_task(task_name, seed=seed)
    protocol = parse_validation(validation, len(task.train) + len(task.val), seed)
    name = field_baselines(task)[0]
    result, _, _ = _fit_on_protocol(name, task, protocol, fit_baseline)
    assert result.val is not None and result.test is not None
    return name, result.val.score, result.test.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", nargs="+", type=Path, required=True,
                        help="search_runs.jsonl files written by benchmarks/quality.py")
    parser.add_argument("--space", required=True, help="the searches' space, as logged: FILE@SHA12")
    parser.add_argument("--budget", default="15cpu-minutes")
    parser.add_argument("--validation", default="auto")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    defaults = logged_defaults(args.logs, args.space, args.budget, args.validation)
    if not defaults:
        raise SystemExit(f"no logged search of space {args.space!r} with its default's full run")
    per_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (task, seed), (default_val, default_test) in sorted(defaults.items()):
        name, val, test = classical_bag(task, seed, args.validation)
        picked = val >= default_val  # the higher validation score, a tie to the classical method
        per_task[task].append({"seed": seed, "name": name, "default": (default_val, default_test),
                               "classical": (val, test), "picked": picked})
        print(f"{task} seed {seed}: default val {default_val:.4f} test {default_test:.4f}; "
              f"{name} val {val:.4f} test {test:.4f} -> {name if picked else 'default'}",
              flush=True)
    rows = []
    for task, seeds in per_task.items():
        chosen = [(s["classical"][1] if s["picked"] else s["default"][1], s["default"][1])
                  for s in seeds]
        rows.append({
            "task": task,
            "seeds": " ".join(str(s["seed"]) for s in seeds),
            "classical method": seeds[0]["name"],
            "default val / test per seed": ", ".join(
                f"{s['default'][0]:.3f} / {s['default'][1]:.3f}" for s in seeds),
            "classical val / test per seed": ", ".join(
                f"{s['classical'][0]:.3f} / {s['classical'][1]:.3f}" for s in seeds),
            "incumbent picked": ", ".join("classical" if s["picked"] else "default" for s in seeds),
            "incumbent's test": summary([c for c, _ in chosen]),
            "default's test": summary([d for _, d in chosen]),
            "incumbent - default (seeds better / worse)": paired_difference(chosen),
            "classical - default, test (seeds better / worse)": paired_difference(
                [(s["classical"][1], s["default"][1]) for s in seeds]),
        })
    write_report(
        "incumbent_choice",
        "The winner rule's incumbent: the engine default, or the field's method when it "
        "validates at least as high?",
        rows,
        notes=(f"Searches of space {args.space}, {args.budget}, validation `{args.validation}`, "
               "as logged by `benchmarks/quality.py`: the engine default's full run (a bag of fold "
               "models under cross-validation), its validation score over the folds and its test "
               "score. The classical method refitted on the same folds, as the search scores it "
               "(a bag of fold models). 'incumbent picked': the higher validation score, an exact "
               "tie to the classical method (the search's rule until this table; it now makes "
               "the classical method the incumbent the default must beat beyond noise). This "
               "measures the incumbent alone: a search's other challengers must still beat it "
               "beyond noise to be served."),
        out_dir=args.out)


if __name__ == "__main__":
    main()
