"""The incumbent-choice benchmark finds each logged search's default full run by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from incumbent_choice import logged_defaults  # noqa: E402

KEY = {"run": "search", "workers": 2, "sampler": "tpe", "pruning": "all",
       "budget": "15cpu-minutes", "validation": "auto", "space": "a.yaml@1"}


def test_the_default_full_run_is_the_one_whose_test_the_log_names(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    lines = [
        # (short val, full val, full test) per full run; the default's test is 0.95
        ({"task": "gunpoint", "seed": 0}, {"default_test": 0.95,
                                           "full_runs": [[0.8, 0.9, 0.95], [0.85, 0.97, 0.93]]}),
        ({"task": "gunpoint", "seed": 1}, {"default_test": None, "full_runs": []}),  # none
        ({"task": "gunpoint", "seed": 2, "budget": "1cpu-minutes"},  # other settings
         {"default_test": 0.9, "full_runs": [[0.8, 0.8, 0.9]]}),
        ({"task": "italy_power_demand", "seed": 0}, {"default_test": 0.96,
                                                     "full_runs": [[0.9, 0.95, 0.96]]}),
    ]
    log.write_text("".join(json.dumps({"key": {**KEY, **key}, "result": result}) + "\n"
                           for key, result in lines) + '{"key": ')  # a killed run's last line
    found = logged_defaults([log], "a.yaml@1", "15cpu-minutes", "auto")
    assert found == {("gunpoint", 0): (0.9, 0.95), ("italy_power_demand", 0): (0.95, 0.96)}
