"""What the user sees while the search runs and when it ends.

On a terminal, one progress line (budget spent, trials done / pruned / failed / running, best
so far) is redrawn in place, with one line per finished trial printed above it; elsewhere (logs,
pipes) only the per-trial lines are written, each carrying the same counters. At the end,
`winners_table` lists the promoted models with their short, full and test scores.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from optuna.trial import TrialState

from orca_automl.search._budget import format_seconds
from orca_automl.search._records import METRIC_NAME, VAL_METRIC, TrialRecord


@dataclass(frozen=True)
class Snapshot:
    """The counters one progress line shows (counts cover the whole study)."""

    used: float
    total: float
    complete: int
    pruned: int
    failed: int
    running: int
    best: TrialRecord | None
    phase: str

    @classmethod
    def of(cls, records: Sequence[TrialRecord], used: float, total: float, running: int,
           phase: str) -> Snapshot:
        finished = [r for r in records if r.finished]
        scored = [r for r in finished if r.state == TrialState.COMPLETE and r.val_score is not None]
        best = min(scored, key=TrialRecord.rank_key, default=None)
        return cls(
            used=used,
            total=total,
            complete=sum(r.state == TrialState.COMPLETE for r in finished),
            pruned=sum(r.state == TrialState.PRUNED for r in finished),
            failed=sum(r.state == TrialState.FAIL for r in finished),
            running=running,
            best=best,
            phase=phase,
        )

    def line(self, width: int = 20) -> str:
        fraction = min(1.0, self.used / self.total) if self.total > 0 else 1.0
        filled = int(round(fraction * width))
        best = "-"
        if self.best is not None:
            best = f"{self.best.val_score:.4f} (trial {self.best.number}, {self.best.stage})"
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} "
            f"{format_seconds(self.used)}/{format_seconds(self.total)} | done {self.complete} "
            f"pruned {self.pruned} failed {self.failed} running {self.running} | best {best} "
            f"| {self.phase}"
        )


class Progress:
    """Writes the progress line and per-trial lines to `stream`."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self.clock = clock
        self._last_draw = -float("inf")
        self._snapshot: Snapshot | None = None

    def update(self, snapshot: Snapshot) -> None:
        """Redraw the line (on a terminal, at most every `interval` seconds)."""
        self._snapshot = snapshot
        if self.tty and self.clock() - self._last_draw >= self.interval:
            self._draw()

    def note(self, text: str) -> None:
        """Print one line (above the progress line on a terminal)."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        suffix = f"  {self._snapshot.line()}" if self._snapshot and not self.tty else ""
        self.stream.write(text + suffix + "\n")
        if self.tty and self._snapshot is not None:
            self._draw()
        self.stream.flush()

    def trial_finished(self, record: TrialRecord) -> None:
        self.note(describe_trial(record))

    def close(self) -> None:
        if self.tty and self._snapshot is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        assert self._snapshot is not None
        width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be redrawn
        self.stream.write("\r\x1b[K" + self._snapshot.line()[:width])
        self.stream.flush()
        self._last_draw = self.clock()


def describe_trial(record: TrialRecord) -> str:
    """One line per finished trial."""
    head = f"trial {record.number:3d} {record.stage:5s} {record.state.name:8s}"
    took = f"{format_seconds(record.device_seconds)}"
    if record.state == TrialState.COMPLETE:
        return f"{head} val {record.val_score:.4f}  cost {record.cost:.3g} GFLOPs  {took}  {summarize(record)}"
    if record.state == TrialState.PRUNED:
        return f"{head} {took}  {summarize(record)}  ({record.pruned_reason})"
    return f"{head} {took}  {summarize(record)}  ({record.error})"


def summarize(record: TrialRecord) -> str:
    """The searched parameters in one short string: backbone/embedder/metric, then the rest."""
    values = {k.split("[")[0]: v for k, v in record.params.items()}
    head = "/".join(str(values.pop(k)) for k in ("model.backbone", "model.embedder", "align.metric")
                    if k in values)
    rest = " ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in sorted(values.items()))
    return f"{head} {rest}".strip()


def winners_table(records: Sequence[TrialRecord]) -> str:
    """The promoted, fully trained winners, best full validation score first (ties: the engine's
    default configuration, then lower validation loss; `TrialRecord.rank_key`)."""
    by_number = {r.number: r for r in records}
    winners = sorted(
        (r for r in records if r.stage == "full" and r.state == TrialState.COMPLETE),
        key=TrialRecord.rank_key,
    )
    if not winners:
        return "no winners yet: no trial was promoted and trained in full"
    metric = str(winners[0].attrs.get(METRIC_NAME, "score"))
    header = ["trial", "from", "configuration", f"short val {metric}", f"full val {metric}",
              f"test {metric}", "GFLOPs", "model folder"]
    rows = [header]
    for w in winners:
        source = by_number.get(w.promoted_from) if w.promoted_from is not None else None
        test = w.attrs.get("test") or {}
        rows.append([
            str(w.number),
            str(w.promoted_from),
            summarize(source or w),
            _short(source.attrs.get(VAL_METRIC)) if source else "-",
            _short(w.attrs.get(VAL_METRIC)),
            _short(test.get("value")),
            _short(w.cost),
            str(w.model_dir or "-"),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
