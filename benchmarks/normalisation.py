"""Which normalisation do a task's series need? The references with and without per-sample z-norm.

For each series task and seed: MiniRocket's and 1-NN's test scores on the task built with every
series z-normalised on its own (the UCR convention) and with per-channel training statistics
only, and on how many seeds the task builder chose each (`choose_per_sample`: 1-NN
leave-one-out on the training split, the convention kept unless per-channel statistics lose
less beyond noise), with its leave-one-out scores. Baselines only: under a minute.

    python benchmarks/normalisation.py
    python benchmarks/normalisation.py --tasks japanese_vowels --seeds 0
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from unittest import mock

from _report import summary, write_report

import orca_automl.tasks._build as build
from orca_automl.baselines import fit_baseline
from orca_automl.tasks import Task, load_task, metric_for

#: The built-in series tasks with a field baseline (burgers1d's dense targets are never
#: z-normalised one by one).
TASKS = ["gunpoint", "italy_power_demand", "basic_motions", "japanese_vowels", "tecator"]
FORMS = {True: "each series z-normalised", False: "per channel only"}
_SCORES = re.compile(r"on training (?P<chosen>[-\d.]+), (?:without|z-normalised one by one) "
                     r"(?P<other>[-\d.]+)")


def forced(name: str, seed: int, per_sample: bool) -> Task:
    """The task built with the given normalisation instead of the builder's choice."""
    with mock.patch.object(build, "choose_per_sample", lambda *args: (per_sample, ())):
        return load_task(name, seed=seed)


def test_scores(task: Task, seed: int) -> dict[str, float]:
    metric = metric_for(task.task_type)
    return {name: metric(task.test.y, fit_baseline(name, task, seed).test)
            for name in ("minirocket", "one_nn")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true",
                        help="accepted for the scripts' smoke test (this one is quick as it is)")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for name in args.tasks:
        scores: dict[bool, dict[str, list[float]]] = {
            flag: {"minirocket": [], "one_nn": []} for flag in FORMS}
        chosen: dict[bool, int] = {flag: 0 for flag in FORMS}
        loo: dict[bool, list[float]] = {flag: [] for flag in FORMS}
        for seed in args.seeds:
            built = load_task(name, seed=seed)
            flag = built.normalizer.per_sample
            chosen[flag] += 1
            found = _SCORES.search(built.description)
            if found:
                loo[flag].append(float(found["chosen"]))
                loo[not flag].append(float(found["other"]))
            for form in FORMS:
                for baseline, value in test_scores(forced(name, seed, form), seed).items():
                    scores[form][baseline].append(value)
            print(f"{name} seed {seed}: chose {FORMS[flag]}", flush=True)
        for form, label in FORMS.items():
            rows.append({
                "task": name, "normalisation": label,
                "MiniRocket (test)": summary(scores[form]["minirocket"]),
                "1-NN (test)": summary(scores[form]["one_nn"]),
                "1-NN leave-one-out on training": summary(loo[form]),
                "chosen on seeds": f"{chosen[form]} / {len(args.seeds)}",
            })
    write_report(
        "normalisation", "Per-sample or per-channel normalisation of series: the references' test scores",
        rows,
        notes=f"Seeds: {args.seeds} (each re-draws the validation split; test sets are fixed). "
        "Each task built twice per seed, its normalisation forced, the baselines fitted on the "
        "training split (MiniRocket: ridge penalty by its own leave-one-out; 1-NN: Euclidean on "
        "the flattened series) and tested once. Accuracy, or R² for tecator. 'chosen on seeds': "
        "what the task builder picked unforced; 'leave-one-out': the 1-NN scores it picked by, "
        "on the training split only (orca_automl/tasks/_build.py: choose_per_sample).",
        out_dir=Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
