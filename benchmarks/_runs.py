"""Results of long benchmark runs, one JSON line per finished run, so that a benchmark cut short
(hours of searches) can resume where it stopped and a later call can add seeds instead of
redoing the others.

A run is identified by its key: everything that decides its result (task, seed, what ran, with
which budget and search space). A line is appended and flushed to disk as soon as its run ends;
a line cut off by a kill is ignored on the next read. Logged runs are reused only when asked
(`reuse=True`, the benchmarks' --resume): by default a benchmark measures again, and its new
lines supersede the old ones for the same key.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

Record = dict[str, Any]


def code_version() -> str:
    """The checkout's commit (with '+' when code has uncommitted changes), or '-' outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        # docs/ is left out: the benchmarks rewrite their own tables there as they run
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)docs"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "-"
    return commit + ("+" if dirty.strip() else "")


class RunLog:
    """The finished runs of one benchmark, read from and appended to a JSON-lines file."""

    def __init__(self, path: Path, reuse: bool = True) -> None:
        self.path = path
        # the code this process runs: read at start, since later commits do not change it
        self.code = code_version()
        self._results: dict[str, Record] = {}
        if reuse and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run
                    continue
                self._results[_canonical(entry["key"])] = entry["result"]

    def get(self, key: Record) -> Record | None:
        return self._results.get(_canonical(key))

    def run(self, key: Record, compute: Callable[[], Record]) -> Record:
        """The logged result for `key`, or compute it, log it (with the code version) and
        return it."""
        found = self.get(key)
        if found is not None:
            return found
        result = {**compute(), "code": self.code}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as f:
            if f.tell() > 0:  # a kill may have left a last line without its newline
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    f.write("\n")
            f.write(json.dumps({"key": key, "result": result}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._results[_canonical(key)] = result
        return result


def _canonical(key: Record) -> str:
    return json.dumps(key, sort_keys=True, default=str)
