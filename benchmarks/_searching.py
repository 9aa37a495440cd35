"""Run orca-search from a benchmark through its API, as the command does, and summarise it."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from _runs import RunLog
from optuna.trial import TrialState
from scipy import stats

from orca_automl.config import OrcaConfig
from orca_automl.search import (
    CycleRunner,
    FoldSpec,
    PruneKind,
    SearchOptions,
    SearchResult,
    Stage,
    StudyKey,
    TrialOutcome,
    TrialRecord,
    TrialRequest,
    Validation,
    alignment_group,
    execute_trial,
    resolve_space,
    run_search,
    summarize,
)

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


#: Tiny schedules for one configuration, so that a --smoke benchmark run takes seconds.
SMOKE_OVERRIDES = {"align.steps": 2, "refine.steps": 4, "refine.eval_every": 2,
                   "align.source_samples": 100}


def fold_runs(runner: CycleRunner, task: Any, config: OrcaConfig, validation: Validation,
              stage: Stage) -> list[TrialOutcome]:
    """One configuration's runs on the folds `validation` gives `stage`, in this process."""
    return [execute_trial(runner, TrialRequest(0, stage, config, fold=FoldSpec(
        i, validation.folds, validation.seed)), task) for i in validation.folds_of(stage)]


def smoke_space(folder: Path) -> str:
    """Write SMOKE_SPACE into `folder`; returns the path to pass as --search-space."""
    path = folder / "smoke.yaml"
    path.write_text(SMOKE_SPACE)
    return str(path)


def search_once(task: str, budget: str, seed: int, folder: Path, *, workers: int = 2,
                sampler: str = "tpe", pruning: str = "all", search_space: str | None = None,
                validation: str = "holdout", study: str = "bench") -> SearchResult:
    """One orca-search session into a fresh SQLite study under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return run_search(SearchOptions(
        task=task, budget=budget, seed=seed, workers=workers, sampler=sampler, pruning=pruning,
        search_space=search_space, study=study, storage=f"sqlite:///{folder.resolve()}/{study}.db",
        validation=validation,
    ))


def count(run: SearchResult, stage: Stage, state: TrialState | None = None) -> int:
    """Trials of `stage` (and `state`, when given) in the study."""
    return sum(r.plan.stage == stage and (state is None or r.state == state) for r in run.records)


def pruned_by(run: SearchResult) -> tuple[int, int, int]:
    """(pruned on alignment loss, by median stopping, between folds) among short trials."""
    kinds = [r.result.pruned.kind for r in run.records
             if r.plan.stage == Stage.SHORT and r.state == TrialState.PRUNED and r.result.pruned]
    return (kinds.count(PruneKind.ALIGNMENT), kinds.count(PruneKind.MEDIAN),
            kinds.count(PruneKind.FOLDS))


def rank_correlation(run: SearchResult) -> tuple[float | None, int, str]:
    """Spearman rho (loss vs. validation score) in the largest alignment group: (rho, n, group)."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in run.records:
        if r.plan.stage != Stage.SHORT or r.state != TrialState.COMPLETE or not r.plan.config:
            continue
        group = alignment_group(r.plan.config)
        if group and r.result.final_align_loss is not None and r.val_score is not None:
            groups[group].append((r.result.final_align_loss, r.val_score))
    if not groups:
        return None, 0, "-"
    group, pairs = max(groups.items(), key=lambda item: len(item[1]))
    if len(pairs) < 3:
        return None, len(pairs), group
    rho = float(stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic)
    return (rho if math.isfinite(rho) else None), len(pairs), group


def value_on_test(record: TrialRecord | None) -> float | None:
    """A trial's test score in the task's metric, None without one."""
    return None if record is None or record.result.test is None else record.result.test.value


def _without_baselines(run: SearchResult) -> TrialRecord | None:
    """The trial the winner rule picks among the search's own models (no baseline, no
    ensemble with one): the study's measurement, made when baselines competed."""
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    measured = study.user_attrs.get(str(StudyKey.WINNER_WITHOUT_BASELINES))
    if not measured or measured.get("winner") is None:
        return None
    return next((r for r in run.records if r.number == measured["winner"]), None)


def describe(record: TrialRecord) -> str:
    """A winner in a few words: its searched parameters (a full run has its source's), the
    baseline's name, or the members of an ensemble ("stage: ..." for the last two)."""
    if record.plan.stage == Stage.BASELINE:
        return f"baseline: {record.plan.baseline}"
    if record.plan.stage == Stage.ENSEMBLE:
        return f"ensemble of trials {list(record.plan.members)}"
    return summarize(record)


def full_runs(run: SearchResult) -> list[tuple[float | None, float | None, float | None]]:
    """(short-trial validation score of its source, full validation, full test) per COMPLETE
    full run."""
    by_number = {r.number: r for r in run.records}
    pairs = []
    for r in run.records:
        if r.plan.stage != Stage.FULL or r.state != TrialState.COMPLETE:
            continue
        source = by_number.get(r.plan.promoted_from) if r.plan.promoted_from is not None else None
        pairs.append((None if source is None else source.val_score, r.val_score,
                      value_on_test(r)))
    return pairs


def logged_search(log: RunLog, task: str, budget: str, seed: int, scratch: Path, *,
                  workers: int = 2, sampler: str = "tpe", pruning: str = "all",
                  search_space: str | None = None, validation: str = "holdout") -> dict[str, Any]:
    """The summary of one orca-search run, from `log` when it ran before with the same task,
    seed, budget, workers, sampler, pruning, validation protocol and space file contents; else
    run and log it.

    Shared by the quality and search-efficiency benchmarks: the quality table's search is the
    efficiency table's default mode (TPE with both pruning rules), and runs once for both.
    """
    space_file = resolve_space(search_space or "cpu-small")
    key = {"task": task, "seed": seed, "run": "search", "budget": budget, "workers": workers,
           "sampler": sampler, "pruning": pruning, "validation": validation,
           "space": f"{space_file.name}@{hashlib.sha256(space_file.read_bytes()).hexdigest()[:12]}"}

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        folder = scratch / f"{task}-{pruning}-{sampler}-{validation.replace(':', '')}-{seed}"
        run = search_once(task, budget, seed, folder, workers=workers, sampler=sampler,
                          pruning=pruning, search_space=search_space, validation=validation)
        winner = run.winners[0] if run.winners else None
        own = _without_baselines(run) or winner
        by_alignment, by_median, by_folds = pruned_by(run)
        default = next((r for r in run.winners if r.plan.engine_default), None)
        rho, n, group = rank_correlation(run)
        return {
            "val": None if winner is None else winner.val_score,
            "test": value_on_test(winner),
            "config": "-" if winner is None else describe(winner),
            "short": count(run, Stage.SHORT),
            "short_complete": count(run, Stage.SHORT, TrialState.COMPLETE),
            "pruned_alignment": by_alignment,
            "pruned_median": by_median,
            "pruned_folds": by_folds,
            "winner_is_default": winner is not None and winner.plan.engine_default,
            "default_test": value_on_test(default),
            "full": count(run, Stage.FULL),
            "full_complete": count(run, Stage.FULL, TrialState.COMPLETE),
            "device_s": sum(r.result.device_seconds for r in run.records),
            "rho": rho, "rho_n": n, "rho_group": group,
            "seconds": time.perf_counter() - start,
            "winner_stage": None if winner is None else str(winner.plan.stage),
            # the winner if baselines (and ensembles with them) could win: a measurement
            # baselines compete: the winner (and "test") may be one; runs logged before this
            # key served the search's own models only, and measured "baselines_test" apart
            "baselines_compete": True,
            "own_test": value_on_test(own),
            "own_winner": None if own is None else describe(own),
            # per fully trained configuration: (short validation score, full val, full test),
            # for the rank correlation between short-trial scores and full-schedule test scores
            "full_runs": full_runs(run),
            # folds each full run trained (its bag's size; 0 on the hold-out split)
            "full_folds": [len(r.plan.folds) for r in run.records
                           if r.plan.stage == Stage.FULL and r.state == TrialState.COMPLETE],
            # per competing baseline: (validation score, test score), to rescore the incumbent
            "baselines": {r.plan.baseline: [r.val_score, value_on_test(r)]
                          for r in run.records if r.plan.stage == Stage.BASELINE},
        }

    return log.run(key, compute)


def split_winners(found: dict[str, Any]) -> tuple[float | None, float | None]:
    """(test score of the winner among the search's own models, of the winner with baselines
    competing) of a logged search. Since baselines compete, "test" is the second and
    "own_test" the first; runs logged before served their own models ("test") and measured
    the other ("baselines_test", absent from the oldest)."""
    if found.get("baselines_compete"):
        return found.get("own_test"), found["test"]
    return found["test"], found.get("baselines_test")


def logged_searches(logs: Sequence[Path], wanted: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(key, result) of each search logged in `logs` (search_runs.jsonl files) whose key has
    the `wanted` values, in log order (a killed run's broken last line is skipped)."""
    for path in logs:
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if all(entry["key"].get(k) == v for k, v in wanted.items()):
                yield entry["key"], entry["result"]
