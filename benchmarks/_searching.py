"""Run orca-search from a benchmark exactly as the command does, and read the study back."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from orca_automl.search._command import build_parser, search
from orca_automl.search._progress import summarize
from orca_automl.search._records import TrialRecord
from orca_automl.search._runner import cycle_toolkit

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
        """The fully trained trial with the best validation score, ties to the lower validation
        loss (orca-search's winners table order)."""
        full = [r for r in self.records
                if r.stage == "full" and r.state == TrialState.COMPLETE and r.val_score is not None]
        return max(full, key=lambda r: (r.val_score or 0.0, -r.val_loss), default=None)

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
