"""What a user sees while orca-search runs and when it ends.

On a terminal, one progress line is redrawn in place: the budget's share spent, what is left
and the ETA, trials done / pruned / failed / running, and the best so far, in at most 79
characters for realistic values, so an 80-column terminal shows it whole; the lines printed
above it (one per finished trial) are wrapped to the terminal's width. Elsewhere (logs, pipes)
nothing is redrawn and no control character is written: each per-trial line carries the same
counters, and a plain progress line follows every `plain_interval` seconds without one. At
the end, `winners_table` lists the promoted models with their short, full and test scores.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
import sys
import textwrap
import time
from collections import deque
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

#: Wall seconds of progress before the ETA is estimated: the spending rate needs a few polls.
ETA_AFTER_SECONDS = 5.0

#: The ETA's spending rate is measured over the last this many wall seconds (or the session).
RATE_WINDOW_SECONDS = 60.0

#: Control characters (newlines, carriage returns, escapes): none reaches a log from a message.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Progress(SearchCallback):
    """Writes the search's progress and per-trial lines to `stream` (the line redrawn in place
    only on a terminal; elsewhere a plain progress line every `plain_interval` seconds without
    a trial line); the header and resume lines go to `out`. `width` fixes the terminal's
    columns (None: asked from the terminal)."""

    def __init__(self, stream: TextIO | None = None, out: TextIO | None = None,
                 interval: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 plain_interval: float = 30.0, width: int | None = None) -> None:
        self.stream = stream or sys.stderr
        self.out = out or sys.stdout
        self.tty = self.stream.isatty()
        self.interval = interval
        self.plain_interval = plain_interval
        self.width = width
        self.clock = clock
        self._last_draw = -float("inf")
        self._last_plain = clock()
        self._snapshot: Snapshot | None = None
        self._rises: deque[tuple[float, float]] = deque()  # (clock, sum of rises of `used`)

    def on_start(self, start: SearchStart) -> None:
        task, space = start.task, start.space
        self._print(f"orca-search: task {task.name} ({task.modality}, {task.task_type}), "
                    f"study {start.study_name!r} in {redact_url(start.storage)}")
        self._print(f"  search space {space.name} ({space.path}), budget {start.budget.text} "
                    f"({format_seconds(start.budget.seconds)} device time), {start.workers} "
                    "worker(s)")
        if start.space_recorded:
            self._print(f"  the installed {space.name} space changed since this study began: it "
                        "resumes with the copy it recorded (--new-study starts one with today's)")
        if start.validation.cross_validated:
            self._print(f"  validation: {start.validation.describe()}")

    def on_resume(self, resumed: Resumed) -> None:
        parts = [f"{format_seconds(resumed.spent)} of this budget already spent"]
        if resumed.interrupted:
            parts.append(f"{resumed.interrupted} trial(s) a stopped run left running marked FAIL")
        if resumed.retries:
            parts.append(f"{resumed.retries} interrupted short trial(s) retried first")
        self._print("  resumed: " + ", ".join(parts))

    def on_progress(self, snapshot: Snapshot) -> None:
        """Redraw the line (on a terminal, at most every `interval` seconds), or write a plain
        one when no line has carried the counters for `plain_interval` seconds."""
        now = self.clock()
        rise = self._rises[-1][1] if self._rises else 0.0
        if self._snapshot is not None:
            rise += max(0.0, snapshot.used - self._snapshot.used)
        self._rises.append((now, rise))
        while len(self._rises) > 2 and self._rises[1][0] <= now - RATE_WINDOW_SECONDS:
            self._rises.popleft()
        self._snapshot = snapshot
        if self.tty:
            if now - self._last_draw >= self.interval:
                self._draw()
        elif now - self._last_plain >= self.plain_interval:
            self.stream.write(f"progress: {progress_line(snapshot, self.eta())}\n")
            self.stream.flush()
            self._last_plain = now

    def on_trial_end(self, record: TrialRecord) -> None:
        self.note(describe_trial(record))

    def on_promotion_skipped(self, promotion: Promotion, remaining: float) -> None:
        source = promotion.source
        self.note(
            f"not promoted: trial {source.number} (val {source.val_score:.4f}) needs about "
            f"{format_seconds(promotion.estimate_seconds)} of full training, "
            f"{format_seconds(remaining)} of the budget is left"
        )

    def on_interrupt(self) -> None:
        """End the redrawn line, after the ^C the terminal echoed, so what follows starts a line."""
        if self.tty and self._snapshot is not None:
            self.stream.write("\n")
            self.stream.flush()

    def on_end(self, result: SearchResult) -> None:
        if self.tty and self._snapshot is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def eta(self) -> float | None:
        """Wall seconds until the budget is spent, at the rate it was spent over the last
        `RATE_WINDOW_SECONDS` (device-seconds per wall second: about the busy workers times
        their device share); None until that can be measured, and once nothing is left.

        The rate counts only the rises of the budget used: a trial is charged what it
        measured, which can be less than the wall time its runs were counted in flight
        (worker start-up, scheduling), so the budget used drops a little when one ends.
        """
        if self._snapshot is None or self._snapshot.left <= 0 or not self._rises:
            return None
        (start, rise0), (end, rise1) = self._rises[0], self._rises[-1]
        if end - start < ETA_AFTER_SECONDS or rise1 <= rise0:
            return None
        return self._snapshot.left / ((rise1 - rise0) / (end - start))

    def note(self, text: str) -> None:
        """Print one line (above the progress line, wrapped to its width, on a terminal)."""
        text = _CONTROL.sub(" ", text)
        if self.tty:  # in one write, so the terminal never shows the line missing
            self._draw("\r\x1b[K" + _wrap(text, self._columns()) + "\n")
            return
        if self._snapshot is not None:
            text += f"  {progress_line(self._snapshot, self.eta())}"
            self._last_plain = self.clock()
        self.stream.write(text + "\n")
        self.stream.flush()

    def _print(self, text: str) -> None:
        """A line of the header to `out` (wrapped to the terminal's width when it is one)."""
        text = _CONTROL.sub(" ", text)
        print(_wrap(text, self._columns()) if self.out.isatty() else text, file=self.out)

    def _draw(self, above: str = "") -> None:
        """Redraw the progress line (if there is one yet), after the text `above` it."""
        if self._snapshot is not None:
            width = self._columns()  # the phase only where it leaves room for an echoed ^C
            line = progress_line(self._snapshot, self.eta(), width - 2)[:width]
            above += "\r\x1b[K" + line
            self._last_draw = self.clock()
        self.stream.write(above)
        self.stream.flush()

    def _columns(self) -> int:
        """Usable columns: the terminal's less one (a line that fills the last column wraps on
        some terminals, and a wrapped line cannot be redrawn)."""
        if self.width is not None:
            return self.width - 1
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
            columns = shutil.get_terminal_size().columns
        return max(20, columns - 1)


def progress_line(snapshot: Snapshot, eta: float | None = None, width: int | None = None) -> str:
    """The counters of one snapshot in one line: the budget's share spent, the device time left
    and the ETA (wall time until the budget is spent; "-" while unknown), trials done, pruned,
    failed and running, the best validation score so far and its trial, then the phase when
    `width` leaves room for it. Without the phase it takes at most 79 characters for budgets of
    hours and up to 999 trials, e.g.
    "40% 4h48m left ETA 1h12m  512 done 431 pruned 56 failed 8 run  best 0.9563 #999"."""
    spent = f"{snapshot.used / snapshot.total:.0%}" if snapshot.total > 0 else "100%"
    best = "-"
    if snapshot.best is not None:
        best = f"{snapshot.best.val_score:.4f} #{snapshot.best.number}"
    line = (
        f"{spent} {compact_seconds(snapshot.left)} left "
        f"ETA {'-' if eta is None else compact_seconds(eta)}  "
        f"{snapshot.complete} done {snapshot.pruned} pruned {snapshot.failed} failed "
        f"{snapshot.running} run  best {best}"
    )
    phase = f"  {snapshot.phase}"
    return line + phase if width is None or len(line) + len(phase) <= width else line


def compact_seconds(seconds: float) -> str:
    """A duration in at most 5 characters (42s, 4m05s, 42m, 3h12m, 123h): the progress line
    must fit in 80 columns (`format_seconds`, used elsewhere, takes up to 8)."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 100 * 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 3600}h"


def _wrap(text: str, width: int) -> str:
    """`text` in lines of at most `width` characters, broken between words (a word longer than
    that, e.g. a path, keeps its own line), the continuations indented."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent="    ", break_long_words=False,
                                   break_on_hyphens=False)) or text


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
            _served_name(w, source),
            _metric(source) if source else "-",
            _metric(w),
            _test(w),
            "-" if w.plan.stage == Stage.BASELINE else short_value(w.cost),
            result.decision.reason(w.number) if result.decision else "-",
            str(w.result.model_dir or "-"),
        ])
    for b in (b for b in result.baselines if not b.servable):
        rows.append([str(b.number), "-", f"baseline: {baseline_name(b)}", "-", _metric(b),
                     short_value(b.result.test.value if b.result.test else None), "-",
                     "reference, not served", "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _served_name(record: TrialRecord, source: TrialRecord | None) -> str:
    if record.plan.stage == Stage.ENSEMBLE:
        return ensemble_name(record)
    if record.plan.stage == Stage.BASELINE:
        return f"baseline: {baseline_name(record)}"
    return summarize(source or record)


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
