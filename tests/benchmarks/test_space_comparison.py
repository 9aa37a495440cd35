"""The space comparison reads the quality benchmark's search logs and pairs seeds by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from space_comparison import compare, read_runs  # noqa: E402

SETTINGS = {"run": "search", "workers": 2, "sampler": "tpe", "pruning": "all",
            "budget": "15cpu-minutes", "validation": "auto"}


def _log(path: Path, space: str, tests: dict[tuple[str, int], float | None], **other: object) -> None:
    with open(path, "a") as f:
        for (task, seed), test in tests.items():
            key = {**SETTINGS, **other, "task": task, "seed": seed, "space": space}
            result = {"test": test, "short": 3, "full": 1, "winner_is_default": seed != 2,
                      "code": "abc1234"}
            f.write(json.dumps({"key": key, "result": result}) + "\n")


def test_spaces_are_paired_on_the_seeds_both_ran(tmp_path: Path) -> None:
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    _log(old, "a.yaml@1", {("gunpoint", 0): 0.90, ("gunpoint", 1): 0.80, ("gunpoint", 2): 0.70})
    _log(new, "b.yaml@2", {("gunpoint", 0): 0.95, ("gunpoint", 2): 0.60, ("gunpoint", 3): 0.5})
    _log(new, "b.yaml@2", {("gunpoint", 1): 0.99}, budget="1cpu-minutes")  # other settings
    _log(new, "b.yaml@2", {("gunpoint", 4): None})  # a search that found no winner
    # seed 3 again, with baselines competing: the served winner (0.99) was a baseline; a space
    # is judged by the winner among its own models (1.0), and the later line counts
    with open(new, "a") as f:
        key = {**SETTINGS, "task": "gunpoint", "seed": 3, "space": "b.yaml@2"}
        f.write(json.dumps({"key": key, "result": {
            "test": 0.99, "own_test": 1.0, "baselines_compete": True, "short": 3, "full": 1,
            "winner_is_default": False, "code": "abc1234"}}) + "\n")
    new.write_text(new.read_text() + '{"key": {"run"')  # the last line of a killed run

    runs = read_runs([old, new], "15cpu-minutes", "auto")
    assert sorted(runs["b.yaml@2"]) == [("gunpoint", 0), ("gunpoint", 2), ("gunpoint", 3)]
    reference, candidate = compare(runs, "a.yaml@1")
    assert reference["difference (seeds better / worse)"] == "-"
    assert candidate["seeds"] == "0 2 3"
    assert candidate["per seed"] == "0.950, 0.600, 1.000"
    # shared seeds 0 and 2: gaps +0.05 and -0.10, mean -0.025, std 0.106
    assert candidate["reference on the same seeds"] == "0.800 ± 0.141"
    assert candidate["difference (seeds better / worse)"].startswith("-0.025 ± 0.106 (1 / 1)")
    assert candidate["default won"] == "1 / 3"  # seed 3 logged twice: the later line counts


def test_a_missing_reference_names_the_logged_spaces(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    _log(log, "a.yaml@1", {("gunpoint", 0): 0.9})
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "space_comparison.py"), "--logs", str(log),
         "--reference", "nope.yaml@0", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no logged search of the reference space 'nope.yaml@0'" in done.stderr
    assert "a.yaml@1" in done.stderr
