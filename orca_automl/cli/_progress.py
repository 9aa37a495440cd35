"""What a user sees while orca-search runs and when it ends.

On a terminal, one progress line (budget spent, trials done / pruned / failed / running, best
so far) is redrawn in place, with one line per finished trial printed above it; elsewhere (logs,
pipes) only the per-trial lines are written, each carrying the same counters. At the end,
`winners_table` lists the promoted models with their short, full and test scores.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from collections.abc import Callable
from typing import TextIO

from optuna.trial import TrialState

from orca_automl.search import (
    Promotion,
    Resumed,
    SearchCallback,
    SearchResult,
    SearchStart,
    Snapshot,
    Stage,
    TrialRecord,
    format_seconds,
    redact_url,
    short_value,
    summarize,
)


class Progress(SearchCallback):
    """Writes the search's header, progress line and per-trial lines to `stream` (the progress
    line only on a terminal); the header and resume lines go to `out`."""

    def __init__(self, stream: TextIO | None = None, out: TextIO | None = None,
                 interval: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.out = out or sys.stdout
        self.tty = self.stream.isatty()
        self.interval = interval
        self.clock = clock
        self._last_draw = -float("inf")
        self._snapshot: Snapshot | None = None

    def on_start(self, start: SearchStart) -> None:
        task, space = start.task, start.space
        print(f"orca-search: task {task.name} ({task.modality}, {task.task_type}), "
              f"study {start.study_name!r} in {redact_url(start.storage)}", file=self.out)
        print(f"  search space {space.name} ({space.path}), budget {start.budget.text} "
              f"({format_seconds(start.budget.seconds)} device time), {start.workers} worker(s)",
              file=self.out)
        if start.validation.cross_validated:
            print(f"  validation: {start.validation.describe()}", file=self.out)

    def on_resume(self, resumed: Resumed) -> None:
        print(f"  resumed: {resumed.interrupted} interrupted trial(s) marked FAIL (short ones "
              f"retried first), {format_seconds(resumed.spent)} of this budget already spent",
              file=self.out)

    def on_progress(self, snapshot: Snapshot) -> None:
        """Redraw the line (on a terminal, at most every `interval` seconds)."""
        self._snapshot = snapshot
        if self.tty and self.clock() - self._last_draw >= self.interval:
            self._draw()

    def on_trial_end(self, record: TrialRecord) -> None:
        self.note(describe_trial(record))

    def on_promotion_skipped(self, promotion: Promotion, remaining: float) -> None:
        source = promotion.source
        self.note(
            f"not promoted: trial {source.number} (val {source.val_score:.4f}) needs about "
            f"{format_seconds(promotion.estimate_seconds)} of full training, "
            f"{format_seconds(remaining)} of the budget is left"
        )

    def on_end(self, result: SearchResult) -> None:
        if self.tty and self._snapshot is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """Print one line (above the progress line on a terminal)."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        suffix = f"  {progress_line(self._snapshot)}" if self._snapshot and not self.tty else ""
        self.stream.write(text + suffix + "\n")
        if self.tty and self._snapshot is not None:
            self._draw()
        self.stream.flush()

    def _draw(self) -> None:
        assert self._snapshot is not None
        width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be redrawn
        self.stream.write("\r\x1b[K" + progress_line(self._snapshot)[:width])
        self.stream.flush()
        self._last_draw = self.clock()


def progress_line(snapshot: Snapshot, width: int = 20) -> str:
    """The counters of one snapshot in one line, led by a bar of the budget spent."""
    fraction = min(1.0, snapshot.used / snapshot.total) if snapshot.total > 0 else 1.0
    filled = int(round(fraction * width))
    best = "-"
    if snapshot.best is not None:
        best = (f"{snapshot.best.val_score:.4f} (trial {snapshot.best.number}, "
                f"{snapshot.best.plan.stage})")
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} "
        f"{format_seconds(snapshot.used)}/{format_seconds(snapshot.total)} | done "
        f"{snapshot.complete} pruned {snapshot.pruned} failed {snapshot.failed} running "
        f"{snapshot.running} | best {best} | {snapshot.phase}"
    )


def describe_trial(record: TrialRecord) -> str:
    """One line per finished trial."""
    head = f"trial {record.number:3d} {record.plan.stage:5s} {record.state.name:8s}"
    took = f"{format_seconds(record.result.device_seconds)}"
    if record.plan.stage == Stage.BASELINE:
        outcome = (f"val {record.val_score:.4f}" if record.val_score is not None
                   else f"({record.result.error})")
        return f"{head} {outcome}  {took}  {baseline_name(record)}"
    if record.plan.stage == Stage.ENSEMBLE:
        return f"{head} val {record.val_score:.4f}  {ensemble_name(record)}"
    if record.state == TrialState.COMPLETE:
        return (f"{head} val {record.val_score:.4f}  cost {record.cost:.3g} GFLOPs  {took}  "
                f"{summarize(record)}")
    if record.state == TrialState.PRUNED:
        reason = record.result.pruned.message if record.result.pruned else None
        return f"{head} {took}  {summarize(record)}  ({reason})"
    return f"{head} {took}  {summarize(record)}  ({record.result.error})"


def winners_table(result: SearchResult) -> str:
    """The promoted, fully trained winners, best first (`SearchResult.winners`)."""
    by_number = {r.number: r for r in result.records}
    winners = result.winners
    if not winners:
        return "no winners yet: no trial was promoted and trained in full"
    first = winners[0].result.val
    metric = first.metric if first is not None else "score"
    header = ["trial", "from", "configuration", f"short val {metric}", f"full val {metric}",
              f"test {metric}", "GFLOPs", "decision", "model folder"]
    rows = [header]
    for w in winners:
        source = by_number.get(w.plan.promoted_from) if w.plan.promoted_from is not None else None
        rows.append([
            str(w.number),
            str(w.plan.promoted_from),
            ensemble_name(w) if w.plan.stage == Stage.ENSEMBLE else summarize(source or w),
            _metric(source) if source else "-",
            _metric(w),
            _test(w),
            short_value(w.cost),
            result.decision.reason(w.number) if result.decision else "-",
            str(w.result.model_dir or "-"),
        ])
    for b in result.baselines:
        rows.append([str(b.number), "-", f"baseline: {baseline_name(b)}", "-", _metric(b),
                     short_value(b.result.test.value if b.result.test else None), "-",
                     "reference, not served", "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _test(record: TrialRecord) -> str:
    """The test metric of the served model, and its bag's when it is a refit model."""
    test, bag = record.result.test, record.result.bag_test
    served = short_value(test.value if test else None)
    return served if bag is None else f"{served} (refit; bag {short_value(bag.value)})"


def _metric(record: TrialRecord) -> str:
    """The validation metric, with its spread over folds under cross-validation."""
    val = record.result.val
    if val is None:
        return "-"
    folds = record.result.fold_vals
    if len(folds) < 2:
        return short_value(val.value)
    spread = statistics.stdev(f.value for f in folds)
    return f"{short_value(val.value)} ± {spread:.2g} ({len(folds)} folds)"


def baseline_name(record: TrialRecord) -> str:
    """The display name of a baseline trial's method (its registered name if unknown)."""
    from orca_automl.baselines import BASELINES

    name = record.plan.baseline or "?"
    return BASELINES.info(name).display_name if name in BASELINES else name


def ensemble_name(record: TrialRecord) -> str:
    """An ensemble trial's members and weights, e.g. "ensemble of 3 (0.6), 7 (0.4)"."""
    parts = ", ".join(f"{m} ({w:.2g})" for m, w in zip(record.plan.members, record.plan.weights,
                                                     strict=True))
    return f"ensemble of {parts}"
