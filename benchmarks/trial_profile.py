"""Where does a short search trial spend its time, and what does bf16 autocast save?

1. Hotspots: one short trial (a typical cpu-small configuration on the task, one torch thread
   as in a 2-worker search on 2 cores) run in a fresh process under py-spy; samples are
   summed by the stage of our code they fall in (inclusive, so nested stages overlap).
2. Phases, fp32 against bf16 autocast (`refine.precision`), side by side in one process,
   alternating, after one warm-up trial: model build + reference features, the align stage,
   the refine stage; and the test score of each (bf16 changes the arithmetic).

    python benchmarks/trial_profile.py --task gunpoint --repeats 2
    python benchmarks/trial_profile.py --smoke          # tiny steps, no py-spy (CI)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _report import write_report  # benchmarks/ is on sys.path when run as a script

#: A typical short trial of the cpu-small space (its base plus one point of its params).
TRIAL = {
    "short_fraction": 0.25,
    "model": {"backbone": "minilm", "embedder": "conv1d", "embedder_args": {"target_seq_len": 32}},
    "align": {"metric": "otdd_gaussian", "steps": 60, "lr": 3e-3, "batch_size": 64,
              "source_samples": 500},
    "refine": {"steps": 400, "batch_size": 16, "eval_every": 40, "decay": "cosine"},
}
SMOKE = {"align": {"steps": 8, "source_samples": 100}, "refine": {"steps": 16, "eval_every": 8}}

#: Stages of a trial, found by the innermost-first function names in py-spy's stacks.
STAGES = (
    ("imports (once per worker process)", ("_find_and_load",)),
    ("model build (weights from disk)", ("build_model",)),
    ("align stage", ("align (orca_automl/cycle/_align.py",)),
    ("  alignment distance (OTDD)", ("_OTDD.__call__", "_OTDD.fit_source")),
    ("refine: forward", ("OrcaModel.forward",)),
    ("refine: backward", ("Tensor.backward",)),
    ("refine: optimizer step", ("Optimizer.profile_hook_step",)),
    ("validation scoring", ("evaluate_split",)),
    ("inference cost (FLOP count)", ("inference_gflops",)),
)

TRIAL_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from orca_automl.config import OrcaConfig
from orca_automl.cycle import run_cycle
from orca_automl.tasks import load_task
task = load_task(sys.argv[1], seed=0)
run_cycle(task, OrcaConfig.from_dict(json.loads(sys.argv[2])), schedule="short")
"""


def hotspots(task: str, config: dict, folder: Path) -> list[dict[str, object]]:
    """Inclusive share of py-spy samples per stage for one short trial in a fresh process."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).is_file():
        raise SystemExit("py-spy is not installed: pip install py-spy (it is in the dev extra)")
    raw = folder / "trial.raw"
    script = folder / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    subprocess.run([spy, "record", "--rate", "50", "--format", "raw", "--output", str(raw),
                    "--", sys.executable, str(script), task, json.dumps(config)],
                   check=True, capture_output=True)
    samples: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        for stage, needles in STAGES:
            if any(needle in stack for needle in needles):
                samples[stage] += int(count)
    return [{"stage": stage, "share of samples": f"{100 * samples[stage] / total:.1f}%",
             "seconds": f"{samples[stage] / 50:.1f}"} for stage, _ in STAGES]


class _Clock:
    """Timestamps of the cycle's stages through its callback."""

    def __init__(self) -> None:
        from orca_automl.cycle import CycleCallback

        marks: dict[str, float] = {}

        class Marks(CycleCallback):
            def on_align_step(self, step: int, loss: float) -> None:
                if step == 0:
                    marks["align start"] = time.perf_counter()

            def on_align_end(self, curve: list[float]) -> bool:
                marks["align end"] = time.perf_counter()
                return True

        self.marks = marks
        self.callback = Marks()


def phases(task_name: str, config: dict, precisions: list[str], repeats: int) -> list[dict[str, object]]:
    """Phase times per precision (alternating, after a warm-up trial) and test scores."""
    import torch

    from orca_automl.config import OrcaConfig
    from orca_automl.cycle import evaluate, run_cycle
    from orca_automl.tasks import load_task

    torch.set_num_threads(1)
    task = load_task(task_name, seed=0)
    base = OrcaConfig.from_dict(config)
    run_cycle(task, base, schedule="short")  # warm-up: imports, weights and reference features cached
    times: dict[str, dict[str, list[float]]] = {p: {"build": [], "align": [], "refine": [], "total": []}
                                               for p in precisions}
    tests: dict[str, list[float]] = {p: [] for p in precisions}
    for _ in range(repeats):
        for precision in precisions:
            clock = _Clock()
            start = time.perf_counter()
            result = run_cycle(task, base.with_overrides({"refine.precision": precision}),
                               schedule="short", callback=clock.callback)
            end = time.perf_counter()
            m = clock.marks
            times[precision]["build"].append(m["align start"] - start)
            times[precision]["align"].append(m["align end"] - m["align start"])
            times[precision]["refine"].append(end - m["align end"])
            times[precision]["total"].append(end - start)
            tests[precision].append(evaluate(result.model, task, "test").value)
    reference = statistics.mean(times[precisions[0]]["refine"])
    return [{
        "precision": p,
        "build + reference s": f"{statistics.mean(times[p]['build']):.2f}",
        "align s": f"{statistics.mean(times[p]['align']):.2f}",
        "refine s": f"{statistics.mean(times[p]['refine']):.2f}",
        "trial s": f"{statistics.mean(times[p]['total']):.2f}",
        f"refine speed-up vs {precisions[0]}": f"{reference / statistics.mean(times[p]['refine']):.2f}x",
        "test score": f"{statistics.mean(tests[p]):.3f}",
    } for p in precisions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gunpoint")
    parser.add_argument("--repeats", type=int, default=2, help="timed trials per precision")
    parser.add_argument("--parts", nargs="+", choices=["hotspots", "phases"],
                        default=["hotspots", "phases"], help="which tables to make")
    parser.add_argument("--smoke", action="store_true", help="tiny steps, no py-spy")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    config = json.loads(json.dumps(TRIAL))
    if args.smoke:
        for section, values in SMOKE.items():
            config[section].update(values)

    notes = (f"Trial: {json.dumps(config)} on {args.task}, short schedule, 1 torch thread. "
             "Hotspots: inclusive shares of py-spy samples (50/s) of one trial in a fresh process, "
             "so imports and the first weight load are in; nested stages overlap. Phases: the "
             "same trial in one warm process, fp32 and bf16 alternating; refine includes "
             "validation scoring and the FLOP count.")
    out_dir = Path(args.out) if args.out else None
    if "hotspots" in args.parts and not args.smoke:
        with tempfile.TemporaryDirectory() as folder:
            rows = hotspots(args.task, config, Path(folder))
        write_report("trial_profile", "Where a short trial spends its time (py-spy)", rows,
                     notes=notes, out_dir=out_dir)
    if "phases" in args.parts:
        from orca_automl.cycle import cpu_has_native_bf16  # lazy, as in phases(): torch is heavy

        precisions = ["fp32", "bf16"]
        if args.smoke and not cpu_has_native_bf16():  # emulated: ~15x fp32, nothing to check
            precisions = ["fp32"]
            print("smoke: bf16 left out (this CPU has no native bf16)", flush=True)
        table = phases(args.task, config, precisions, 1 if args.smoke else args.repeats)
        write_report("trial_profile_phases", "A short trial's phases: float32 against bf16 autocast",
                     table, notes=notes, out_dir=out_dir)


if __name__ == "__main__":
    main()
