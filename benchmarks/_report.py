"""Shared by every benchmark: the header (command, machine, versions, date) and writing a
table as markdown + CSV under docs/benchmarks/."""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import statistics
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"


def header(title: str) -> str:
    import torch

    cmd = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    return "\n".join([
        f"# {title}",
        "",
        f"- command: `{cmd}`",
        f"- machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "",
    ])


def columns(rows: list[dict[str, object]]) -> list[str]:
    """Every column of `rows` in first-seen order (a skipped row may hold only a few)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def markdown_table(rows: list[dict[str, object]]) -> str:
    cols = columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "-")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_report(name: str, title: str, rows: list[dict[str, object]], notes: str = "",
                 out_dir: Path | None = None) -> str:
    """Print the table and write `<name>.md` and `<name>.csv`; returns the markdown."""
    out_dir = out_dir or OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    text = header(title) + markdown_table(rows) + "\n" + (f"\n{notes.strip()}\n" if notes else "")
    (out_dir / f"{name}.md").write_text(text)
    with open(out_dir / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(rows), restval="-")
        writer.writeheader()
        writer.writerows(rows)
    print(text)
    return text


def summary(values: list[float]) -> str:
    """'mean ± std' over seeds ('-' when nothing was measured)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def paired_difference(pairs: list[tuple[float, float]]) -> str:
    """Mean ± std of a - b over seeds for (a, b) pairs, and on how many seeds each was higher."""
    if not pairs:
        return "-"
    gaps = [a - b for a, b in pairs]
    better, worse = sum(g > 0 for g in gaps), sum(g < 0 for g in gaps)
    spread = f" ± {statistics.stdev(gaps):.3f}" if len(gaps) > 1 else ""
    return f"{statistics.mean(gaps):+.3f}{spread} ({better} / {worse})"
