"""Run orca-search from a benchmark exactly as the command does, and read the study back."""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from _runs import RunLog
from optuna.trial import TrialState
from scipy import stats

from orca_automl.search._command import build_parser, search
from orca_automl.search._progress import summarize
from orca_automl.search._pruning import alignment_group
from orca_automl.search._records import TrialRecord
from orca_automl.search._runner import cycle_toolkit
from orca_automl.search._space import resolve_space

#: A search space of tiny schedules, so that a --smoke search finishes in about a minute.
SMOKE_SPACE = """\
description: benchmark smoke run, tiny schedules
base:
  short_fraction: 0.5
  align: {steps: 2, batch_size: 32, source_samples: 100}
  refine: {steps: 8, eval_every: 4, batch_size: 8}
promotion: {top_k: 1, share: 0.5}
params:
  model.backbone: {choices: [minilm, efficientnet_lite0]}
  model.embedder: {choices: [conv1d, patch_mlp, tabular_linear, stem_conv, conv_adapter]}
  align.metric: {choices: [otdd_gaussian, none]}
  refine.lr: {float: [1.0e-5, 1.0e-4], log: true}
"""


def smoke_space(folder: Path) -> str:
    """Write SMOKE_SPACE into `folder`; returns the path to pass as --search-space."""
    path = folder / "smoke.yaml"
    path.write_text(SMOKE_SPACE)
    return str(path)


@dataclass(frozen=True)
class SearchRun:
    """One finished orca-search session: its trials and the log it printed."""

    records: list[TrialRecord]
    log: str

    def count(self, stage: str, state: TrialState | None = None) -> int:
        return sum(r.stage == stage and (state is None or r.state == state) for r in self.records)

    @property
    def winner(self) -> TrialRecord | None:
        """The fully trained trial with the best validation score, ties as in orca-search's
        winners table (`TrialRecord.rank_key`)."""
        full = [r for r in self.records
                if r.stage == "full" and r.state == TrialState.COMPLETE and r.val_score is not None]
        return min(full, key=TrialRecord.rank_key, default=None)

    @property
    def winner_test(self) -> float | None:
        w = self.winner
        return None if w is None else float((w.attrs.get("test") or {})["value"])

    @property
    def winner_config(self) -> str:
        w = self.winner
        if w is None:
            return "-"
        source = next((r for r in self.records if r.number == w.promoted_from), w)
        return summarize(source)


def run_search(task: str, budget: str, seed: int, folder: Path, *, workers: int = 2,
               sampler: str = "tpe", pruning: str = "all", search_space: str | None = None,
               study: str = "bench") -> SearchRun:
    """`orca-search --task ... --budget ...` into a fresh SQLite study under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder.resolve()}/{study}.db"
    argv = ["--task", task, "--budget", budget, "--seed", str(seed), "--workers", str(workers),
            "--storage", url, "--study", study, "--sampler", sampler, "--pruning", pruning]
    if search_space:
        argv += ["--search-space", search_space]
    out = io.StringIO()
    code = search(build_parser().parse_args(argv), cycle_toolkit(), out=out)
    if code != 0:
        raise RuntimeError(f"orca-search exited {code}: {out.getvalue()[-2000:]}")
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    return SearchRun([TrialRecord.from_frozen(t) for t in trials], out.getvalue())


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


def logged_search(log: RunLog, task: str, budget: str, seed: int, scratch: Path, *,
                  workers: int = 2, sampler: str = "tpe", pruning: str = "all",
                  search_space: str | None = None) -> dict[str, Any]:
    """The summary of one orca-search run, from `log` when it ran before with the same task,
    seed, budget, workers, sampler, pruning and space file contents; else run and log it.

    Shared by the quality and search-efficiency benchmarks: the quality table's search is the
    efficiency table's default mode (TPE with both pruning rules), and runs once for both.
    """
    space_file = resolve_space(search_space or "cpu-small")
    key = {"task": task, "seed": seed, "run": "search", "budget": budget, "workers": workers,
           "sampler": sampler, "pruning": pruning,
           "space": f"{space_file.name}@{hashlib.sha256(space_file.read_bytes()).hexdigest()[:12]}"}

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        run = run_search(task, budget, seed, scratch / f"{task}-{pruning}-{sampler}-{seed}",
                         workers=workers, sampler=sampler, pruning=pruning,
                         search_space=search_space)
        winner = run.winner
        by_alignment, by_median = pruned_by(run)
        rho, n, group = rank_correlation(run)
        return {
            "val": None if winner is None else winner.val_score,
            "test": run.winner_test,
            "config": run.winner_config,
            "short": run.count("short"),
            "short_complete": run.count("short", TrialState.COMPLETE),
            "pruned_alignment": by_alignment,
            "pruned_median": by_median,
            "full": run.count("full"),
            "full_complete": run.count("full", TrialState.COMPLETE),
            "device_s": sum(r.device_seconds or 0.0 for r in run.records),
            "rho": rho, "rho_n": n, "rho_group": group,
            "seconds": time.perf_counter() - start,
        }

    return log.run(key, compute)
