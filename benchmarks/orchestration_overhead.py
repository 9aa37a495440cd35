"""What does orca-search's machinery (Ray, Optuna, the study database) cost per trial?

Runs the `orca-search` command on a space with ONE fixed, tiny configuration (so every trial
does the same work) with --workers 1 and 2, reads each trial's times back from the Optuna
study, then replays the same trials one after the other in a plain Python process
(`CycleRunner().run`, the exact work a trial does, without Ray, Optuna or the database).
Reports seconds and percent overhead per trial, fixed start-up and shut-down costs,
throughput with 2 workers against 1, and the peak memory of each whole process tree.

    python benchmarks/orchestration_overhead.py                       # gunpoint, ~10 minutes
    python benchmarks/orchestration_overhead.py --workers 1 2 --budget 5cpu-minutes
    python benchmarks/orchestration_overhead.py --smoke               # tiny trials, for CI
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from _report import write_report  # benchmarks/ is on sys.path when run as a script

from orca_automl.config import OrcaConfig, Stage

#: The one configuration every trial runs (short_fraction 1: the short and full schedules
#: have the same steps; the promoted full run adds the test evaluation and saving a winner).
BASE: dict[str, Any] = {
    "short_fraction": 1.0,
    "model": {"backbone": "minilm", "embedder": "conv1d"},
    "align": {"metric": "otdd_gaussian", "steps": 5, "source_samples": 500, "batch_size": 64},
    "refine": {"steps": 20, "eval_every": 10, "batch_size": 8},
}
SMOKE: dict[str, Any] = {
    "align": {"steps": 1, "source_samples": 64, "batch_size": 32},
    "refine": {"steps": 2, "eval_every": 1},
}
LAUNCH = "import sys; from orca_automl.cli import search_main; sys.exit(search_main())"
SAMPLE_SECONDS = 0.2


# --------------------------------------------------------------------- process memory
def process_tree(root: int) -> list[int]:
    """`root` and its descendants, plus any process in the session `root` leads."""
    children: dict[int, list[int]] = {}
    tree = {root}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
        pid, ppid, session = int(entry), int(fields[1]), int(fields[3])
        children.setdefault(ppid, []).append(pid)
        if session == root:
            tree.add(pid)
    stack = list(tree)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in tree:
                tree.add(child)
                stack.append(child)
    return sorted(tree)


def rss_pss_bytes(pid: int) -> tuple[int, int]:
    """Resident (RSS) and proportional (PSS: shared pages split between sharers) bytes."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:  # "Rss:   1234 kB" after one header line
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0]) * 1024
    return values.get("Rss", 0), values.get("Pss", 0)


class TreeMemory:
    """Samples the summed RSS and PSS of a process tree every SAMPLE_SECONDS in a thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = pss = 0
            for pid in process_tree(self.root):
                with contextlib.suppress(OSError, ValueError):  # exited meanwhile
                    r, p = rss_pss_bytes(pid)
                    rss, pss = rss + r, pss + p
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._stop.wait(SAMPLE_SECONDS)


# ---------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Trial:
    """One finished trial: stage, config, when it was asked for and told (epoch seconds),
    and the seconds of its work (the device-seconds its worker charged; in-process: its
    wall time)."""

    number: int
    stage: Stage
    state: str
    config: OrcaConfig
    asked: float
    told: float
    work: float


@dataclass(frozen=True)
class Run:
    """One measured run: its trials, launch and exit (epoch seconds), peak memory (bytes)."""

    trials: list[Trial]
    launched: float
    exited: float
    peak_rss: int
    peak_pss: int


def run_search(task: str, workers: int, budget: str, base: dict[str, Any], seed: int,
               folder: Path, timeout: float) -> Run:
    """One `orca-search` session in a subprocess (its own session, so Ray's processes are in
    the sampled tree and cleaned up), then its trials read back from the study."""
    import optuna

    from orca_automl.search import TrialRecord

    space = folder / f"space-w{workers}.yaml"
    space.write_text(yaml.safe_dump({
        "description": "orchestration benchmark: one fixed configuration",
        "base": base,
        "promotion": {"top_k": 1, "share": 0.3},
        "params": {"align.metric": {"choices": [base["align"]["metric"]]}},
    }))
    url = f"sqlite:///{folder / f'w{workers}.db'}"
    command = [sys.executable, "-c", LAUNCH, "--task", task, "--budget", budget,
               "--workers", str(workers), "--storage", url, "--study", f"w{workers}",
               "--search-space", str(space), "--seed", str(seed),
               "--no-baselines", "--no-ensemble", "--no-report"]  # trials only: what the replay can repeat
    log = folder / f"w{workers}.log"
    with open(log, "w") as out:
        launched = time.time()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            with TreeMemory(proc.pid) as memory:
                code = proc.wait(timeout=timeout)
            exited = time.time()
        finally:  # whatever of this session outlived the command (or the timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise SystemExit(f"orca-search --workers {workers} exited {code}:\n{tail}")
    trials = []
    for frozen in optuna.load_study(study_name=f"w{workers}", storage=url).trials:
        record = TrialRecord.from_frozen(frozen)
        if frozen.datetime_start is None or frozen.datetime_complete is None:
            continue
        assert record.plan.config is not None, "every trial of this space samples a config"
        trials.append(Trial(record.number, record.plan.stage, record.state.name,
                            record.plan.config, frozen.datetime_start.timestamp(),
                            frozen.datetime_complete.timestamp(),
                            record.result.device_seconds))
    return Run(trials, launched, exited, memory.peak_rss, memory.peak_pss)


def _replay(task: str, seed: int, trials: list[Trial], queue: Any) -> None:
    """In a fresh process: the trials' work, one after the other, timed (spawn target)."""
    from orca_automl.search import CycleRunner, TrialMonitor, TrialRequest
    from orca_automl.tasks import load_task

    loaded = load_task(task, seed=seed)
    timed = []
    for trial in trials:
        start = time.time()
        request = TrialRequest(trial.number, trial.stage, trial.config)
        CycleRunner().run(request, loaded, TrialMonitor(None, None))
        timed.append((start, time.time()))
    queue.put(timed)


def run_in_process(task: str, seed: int, trials: list[Trial], timeout: float) -> Run:
    """Replay `trials` in one spawned Python process (cold, like a search's worker)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    launched = time.time()
    proc = context.Process(target=_replay, args=(task, seed, trials, queue))
    proc.start()
    assert proc.pid is not None
    with TreeMemory(proc.pid) as memory:
        proc.join(timeout)  # the child's few result bytes fit the queue's pipe
    exited = time.time()
    if proc.exitcode != 0:
        proc.kill()
        raise SystemExit(f"the in-process replay failed or timed out (exit code {proc.exitcode})")
    timed = queue.get(timeout=10)
    replayed = [Trial(t.number, t.stage, t.state, t.config, start, end, end - start)
                for t, (start, end) in zip(trials, timed, strict=True)]
    return Run(replayed, launched, exited, memory.peak_rss, memory.peak_pss)


def warm_reference_cache(base: dict[str, Any], task: str, seed: int) -> None:
    """Compute (or find) the backbone's reference features once, so no measured run does."""
    from orca_automl.cycle import build_model
    from orca_automl.tasks import load_task

    config = OrcaConfig.from_dict({**base, "seed": seed})
    model = build_model(load_task(task, seed=seed), config.model, seed)
    model.backbone.reference(config.align.source_samples, seed)


# -------------------------------------------------------------------------- report
def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def summarise(label: str, workers: str, run: Run, in_process: float,
              one_worker_rate: float | None, search: bool) -> dict[str, object]:
    """One table row; per-trial means are over COMPLETE trials."""
    done = [t for t in run.trials if t.state == "COMPLETE"]
    first, last = min(t.asked for t in run.trials), max(t.told for t in run.trials)
    asks = sorted(t.asked for t in run.trials)
    turnaround = [min((a for a in asks if a >= t.told), default=None) for t in run.trials]
    gaps = [a - t.told for t, a in zip(run.trials, turnaround, strict=True) if a is not None]
    rate = 60.0 * len(run.trials) / (last - first)
    span = _mean([t.told - t.asked for t in done])
    short = sum(t.stage == Stage.SHORT for t in done)
    other = len(run.trials) - len(done)
    dash = "-"
    return {
        "run": label,
        "workers": workers,
        "trials (short + full)": f"{short} + {len(done) - short}" + (f" (+{other} not complete)" if other else ""),
        "wall s": f"{run.exited - run.launched:.1f}",
        "startup s": f"{first - run.launched:.1f}",
        "shutdown s": f"{run.exited - last:.1f}",
        "in-process s / trial": f"{in_process:.2f}",
        "ask->tell s / trial": f"{span:.2f}" if search else dash,
        "device s / trial": f"{_mean([t.work for t in done]):.2f}" if search else dash,
        "overhead s / trial": f"{span - in_process:+.2f}" if search else dash,
        "overhead %": f"{100 * (span - in_process) / in_process:+.1f}" if search else dash,
        "tell->next ask s": f"{_mean(gaps):.2f}" if search and gaps else dash,
        "trials / min": f"{rate:.2f}",
        "throughput vs 1 worker": f"{rate / one_worker_rate:.2f}x" if one_worker_rate else dash,
        "peak RSS sum GB": f"{run.peak_rss / 2**30:.2f}",
        "peak PSS sum GB": f"{run.peak_pss / 2**30:.2f}",
    }


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: {**v, **overrides.get(k, {})} if isinstance(v, dict) else v for k, v in base.items()}


NOTES = """\
- Task {task}; every trial runs the same configuration {config} (the search space has one
  parameter with one choice), budget {budget} of device time per search, promotion top_k 1.
- `orca-search` runs as a subprocess with a fresh SQLite study; Ray is started and stopped
  by it. Times per trial come from the study: ask->tell is Optuna's datetime_start to
  datetime_complete (the driver's view: Ray dispatch, the trial, result transfer, polling,
  database writes); device s is what the budget was charged: execute_trial's wall time
  inside the Ray worker (CPU trials hold one device share).
  tell->next ask: the driver's turnaround from one tell to the next ask (sampler, database).
- In-process: the workers-1 (else the first) search's COMPLETE trials replayed in that
  order by `CycleRunner().run` (run_cycle; the promoted full run adds its test evaluation and
  saved model, as in the search) in one spawned Python process. Startup: launch to the first
  trial (imports, task, Ray); shutdown: the last trial to the process's exit.
- Overhead = ask->tell minus in-process, per COMPLETE trial (means). The first trial in each
  Ray worker, like the first in-process one, pays the cold imports (torch, transformers).
  With 2 workers each
  trial gets one of the 2 cores (Ray gives each worker CPUs // workers), so its overhead
  includes that slowdown; throughput (trials per minute from the first ask to the last tell,
  every finished trial) is the fair comparison there.
- Peak memory: the largest sum, sampled every 0.2 s from /proc, over the process tree (the
  command, Ray's processes and workers); RSS counts shared pages (torch's libraries, Ray's
  object store) once per process, PSS splits them between sharers. The reference features
  were cached before any measured run.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gunpoint")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--budget", default="150s",
                        help="each search's budget (device time; ~15 s trials: ~7 trials)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--smoke", action="store_true",
                        help="1-step align, 2-step refine, budget 1s (checks the script runs)")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    base = _merge(BASE, SMOKE) if args.smoke else BASE
    budget = "1s" if args.smoke else args.budget

    warm_reference_cache(base, args.task, args.seed)
    with tempfile.TemporaryDirectory(prefix="orca-oh-") as tmp:
        runs = {}
        for workers in args.workers:
            runs[workers] = run_search(args.task, workers, budget, base, args.seed, Path(tmp),
                                       args.timeout)
            print(f"--workers {workers}: {len(runs[workers].trials)} trials", flush=True)
    reference = runs.get(1) or runs[args.workers[0]]
    done = [t for t in reference.trials if t.state == "COMPLETE"]
    plain = run_in_process(args.task, args.seed, done, args.timeout)
    in_process = _mean([t.work for t in plain.trials])

    rows = []
    one_rate = None
    if 1 in runs:
        one_rate = 60.0 * len(runs[1].trials) / (max(t.told for t in runs[1].trials)
                                                  - min(t.asked for t in runs[1].trials))
    rows.append(summarise("in-process (CycleRunner.run)", "-", plain, in_process, one_rate, False))
    for workers, run in runs.items():
        rows.append(summarise(f"orca-search --workers {workers}", str(workers), run, in_process,
                              one_rate, True))

    config = yaml.safe_dump(base, default_flow_style=True, width=200).strip()
    write_report(
        "orchestration_overhead",
        "Orchestration overhead: one trial through orca-search (Ray + Optuna + SQLite) vs in-process",
        rows,
        notes=NOTES.format(task=args.task, config=config, budget=budget),
        out_dir=Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
