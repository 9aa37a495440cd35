"""The benchmarks' run log: a finished run is computed once, survives a restart and a kill."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _runs import RunLog  # noqa: E402


def test_a_logged_run_is_not_computed_again_even_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    calls: list[int] = []

    def compute() -> dict[str, object]:
        calls.append(1)
        return {"test": 0.5 + len(calls)}

    key = {"task": "gunpoint", "seed": 0, "run": "search", "budget": "10cpu-minutes"}
    first = RunLog(path).run(key, compute)
    assert first["test"] == 1.5 and "code" in first
    # the same key in another order, from a fresh log: read back, not recomputed
    again = RunLog(path).run(dict(reversed(list(key.items()))), compute)
    assert again == first and len(calls) == 1
    other = RunLog(path).run({**key, "seed": 1}, compute)
    assert other["test"] == 2.5 and len(calls) == 2
    assert len(path.read_text().splitlines()) == 2


def test_a_line_cut_off_by_a_kill_is_ignored_and_the_next_line_stays_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    RunLog(path).run({"seed": 0}, lambda: {"test": 1.0})
    with open(path, "a") as f:  # a run killed while its line was being written
        f.write('{"key": {"seed": 1}, "result": {"te')
    log = RunLog(path)
    assert log.get({"seed": 0}) is not None and log.get({"seed": 1}) is None
    log.run({"seed": 1}, lambda: {"test": 2.0})
    assert RunLog(path).get({"seed": 1})["test"] == 2.0
    readable = [json.loads(line) for line in path.read_text().splitlines()[-1:]]
    assert readable[0]["key"] == {"seed": 1}


def test_without_reuse_a_run_is_measured_again_and_its_new_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    RunLog(path).run({"seed": 0}, lambda: {"test": 1.0})
    again = RunLog(path, reuse=False).run({"seed": 0}, lambda: {"test": 2.0})
    assert again["test"] == 2.0
    assert RunLog(path).get({"seed": 0})["test"] == 2.0
    assert len(path.read_text().splitlines()) == 2
