"""benchmarks/faults.py --smoke: a search on the fake runner has its Ray worker killed once and
its driver SIGKILLed twice (a FULL trial running, a winner being saved), is rerun until it
completes, and every invariant holds."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INVARIANTS = ["complete kept", "none left RUNNING", "spent never down", "within budget",
              "promoted once", "winners load", "dashboard"]
COLUMNS = ["#", "storage", "kill", "when (s)", "landed", "mid-save", "complete / running",
           "spent at kill (s)", "spent after (s)", "rerun exit", "procs left at rerun",
           *INVARIANTS]

pytestmark = pytest.mark.integration


def test_smoke_run_kills_reruns_and_every_invariant_holds(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One storage, PostgreSQL where a server is given (as under .ci/run), else SQLite: the
    script is the same for both. It is the PostgreSQL test of the kill-and-rerun contract;
    tests/search/test_integration.py tests it on SQLite."""
    storage = "postgresql" if os.environ.get("ORCA_AUTOML_TEST_POSTGRES") else "sqlite"
    env = dict(os.environ)
    if storage == "postgresql":  # a fresh database, named to the script through the environment
        env["ORCA_AUTOML_TEST_POSTGRES"] = request.getfixturevalue("postgres_url")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "faults.py"), "--smoke", "--storage", storage,
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    progress = result.stdout.split("\n# ", 1)[0].splitlines()
    assert len(progress) == 4 and all(len(line) <= 80 for line in progress), progress

    with open(tmp_path / "faults.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == COLUMNS
    assert [r["#"] for r in rows] == ["W", "1", "2"]
    assert {r["storage"] for r in rows} == {storage}
    worker, full, save = rows
    assert worker["kill"] == "Ray worker" and "-> FAIL: WorkerCrashedError" in worker["landed"]
    assert full["kill"].startswith("FULL running") and " full run " in full["landed"]
    assert save["kill"] == "winner save" and save["mid-save"] in ("yes", "no")
    assert full["rerun exit"] == "killed (#2)" and save["rerun exit"] == "0"
    for row in rows:
        assert all(row[name] == "yes" for name in INVARIANTS), row

    markdown = (tmp_path / "faults.md").read_text()
    assert markdown.startswith("# ") and "| " + " | ".join(COLUMNS) + " |" in markdown
    assert (f"- {storage}: kills survived 2 of 2 (2 planned); worker kill survived: yes; final "
            "run exit 0") in markdown
    if storage == "postgresql":  # the password never reaches the table
        password = env["ORCA_AUTOML_TEST_POSTGRES"].split("@")[0].rsplit(":", 1)[-1]
        assert password not in markdown + result.stdout + result.stderr
