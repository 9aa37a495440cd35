"""What a user sees: `orca-search` in a real 80x24 terminal (tmux), and in a pipe.

The command is the real one (real Ray, a real SQLite study in tmp_path) with the fake runner
sleeping for real (tests/search/fake_cli.py). In the terminal its progress line is redrawn in
place on one row, every row fits in 80 columns, and Ctrl-C stops it with exit code 130 and one
line, leaving a study that the same command resumes without losing or double-charging
anything. In a pipe nothing but text and newlines is written.

The terminal test needs `tmux`; without it, it skips and says why, unless
ORCA_AUTOML_REQUIRE_TERMINAL=1 (as `.ci/run` sets), where it fails.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.search import Stage, TrialRecord, format_seconds
from tests.search.fakes import SPACES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
REQUIRE_TERMINAL_ENV = "ORCA_AUTOML_REQUIRE_TERMINAL"

#: The progress line, every counter in place.
PROGRESS = re.compile(r"^\d+% \S+ left ETA (-|\S+)  (\d+) done \d+ pruned \d+ failed (\d+) run  "
                      r"best (-|-?[\d.]+ #\d+)")
INTERRUPTED = re.compile(r"orca-search: interrupted: (\d+) running trials? marked interrupted, "
                         r"\S+ of the 24s budget spent; run the same command to resume")
BUDGET = "24s"


def _command() -> list[str]:
    return [sys.executable, "-m", "tests.search.fake_cli", "--task", "fake-1d", "--budget",
            BUDGET, "--workers", "2", "--search-space", str(SPACES / "tiny.yaml"),
            "--validation", "holdout", "--no-report"]  # the study: studies/fake-1d.db in the cwd


def _records(folder: Path) -> dict[int, TrialRecord]:
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{folder}/studies/fake-1d.db")
    return {t.number: TrialRecord.from_frozen(t) for t in study.trials}


def _controls(text: str) -> list[str]:
    """Control characters other than the newline (carriage returns, escapes, ...)."""
    return sorted({repr(c) for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7f})


class Terminal:
    """A detached 80x24 tmux session on a private server, running one shell script."""

    def __init__(self) -> None:
        self.server = ["tmux", "-L", f"orca-test-{os.getpid()}", "-f", "/dev/null"]

    def start(self, script: Path) -> None:
        self._tmux("new-session", "-d", "-s", "orca", "-x", "80", "-y", "24", f"sh {script}")

    def screen(self) -> list[str]:
        """The non-empty rows on screen, rows the terminal wrapped joined (so a line wider than
        80 columns shows as one)."""
        shown = self._tmux("capture-pane", "-p", "-J", "-t", "orca")
        return [row.rstrip() for row in shown.splitlines() if row.strip()]

    def keys(self, *names: str) -> None:
        self._tmux("send-keys", "-t", "orca", *names)

    def close(self) -> None:
        subprocess.run([*self.server, "kill-server"], capture_output=True, timeout=30)

    def _tmux(self, *arguments: str) -> str:
        return subprocess.run([*self.server, *arguments], check=True, capture_output=True,
                              text=True, timeout=30).stdout


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """A tmux terminal: skipped without tmux, and failed instead when one is required."""
    if shutil.which("tmux") is None:
        reason = "the terminal test needs tmux on PATH (apt-get install tmux)"
        if os.environ.get(REQUIRE_TERMINAL_ENV) == "1":
            pytest.fail(f"{REQUIRE_TERMINAL_ENV}=1 but {reason}")
        pytest.skip(reason)
    terminal = Terminal()
    try:
        yield terminal
    finally:
        terminal.close()


def test_in_a_terminal_the_line_is_redrawn_in_place_and_ctrl_c_stops_and_resumes(
    tmp_path: Path, terminal: Terminal
) -> None:
    script = tmp_path / "run.sh"
    # sh runs the command in the foreground, as a user would; its trap keeps it alive past
    # Ctrl-C (which reaches both) to print the exit code, and `sleep` keeps the pane to read
    script.write_text(f"cd {shlex.quote(str(tmp_path))}\ntrap : INT\n"
                      f"PYTHONPATH={shlex.quote(str(ROOT))} {shlex.join(_command())}\n"
                      "echo EXIT=$?\nsleep 600\n")
    terminal.start(script)

    screens: list[list[str]] = []
    deadline = time.monotonic() + 120
    while True:  # until trials have finished and the ETA is known: then press Ctrl-C
        rows = terminal.screen()
        assert time.monotonic() < deadline, "\n".join(rows)
        assert not any(row.startswith("EXIT=") for row in rows), "\n".join(rows)
        screens.append(rows)
        found = [m for m in map(PROGRESS.match, rows) if m]
        if found and int(found[-1].group(2)) >= 2 and found[-1].group(1) != "-":
            break
        time.sleep(0.3)
    terminal.keys("C-c")

    drawn = [rows for rows in screens if any(map(PROGRESS.match, rows))]
    assert len(drawn) >= 3
    for rows in drawn:
        assert sum(bool(PROGRESS.match(row)) for row in rows) == 1, "\n".join(rows)  # not stacked
        assert PROGRESS.match(rows[-1]), "\n".join(rows)  # the last row, under the trial lines
        for row in rows:  # wrapped between words: only a word wider than the screen is wider
            assert len(row) <= 80 or " " not in row.strip(), row
    # redrawn in place: the same row (same rows above it) shows new values
    assert any(a[:-1] == b[:-1] and a[-1] != b[-1] for a, b in zip(drawn, drawn[1:], strict=False))
    assert any(m.group(1) == "-" for m in (PROGRESS.match(rows[-1]) for rows in drawn) if m)

    deadline = time.monotonic() + 60
    rows = terminal.screen()
    while not any(row.startswith("EXIT=") for row in rows):
        assert time.monotonic() < deadline, "\n".join(rows)
        time.sleep(0.3)
        rows = terminal.screen()
    assert "EXIT=130" in rows, "\n".join(rows)
    stopped = [m for m in map(INTERRUPTED.search, rows) if m]
    assert len(stopped) == 1, "\n".join(rows)

    before = _records(tmp_path)
    interrupted = [r for r in before.values() if r.result.interrupted]
    assert not any(r.state == TrialState.RUNNING for r in before.values())
    assert len(interrupted) == int(stopped[0].group(1))
    assert all(r.state == TrialState.FAIL and r.result.device_seconds > 0 for r in interrupted)
    spent = sum(r.result.device_seconds for r in before.values())

    # the same command again, in a pipe: it resumes and finishes, and writes only text
    second = subprocess.run(_command(), cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    assert f"resumed: {format_seconds(spent)} of this budget already spent" in second.stdout
    assert not _controls(second.stdout + second.stderr)  # a pipe gets text and newlines only
    assert re.search(r"^trial +\d+ \w+ +COMPLETE .*  \d+% \S+ left ETA ", second.stderr,
                     re.MULTILINE), second.stderr  # each trial line carries the counters
    after = _records(tmp_path)
    for n, r in before.items():  # nothing finished lost or changed
        assert after[n].state == r.state and after[n].values == r.values
        assert after[n].result.device_seconds == r.result.device_seconds
    for r in interrupted:
        if r.plan.stage == Stage.SHORT:  # retried once
            assert sum(a.plan.retry_of == r.number for a in after.values()) == 1
    study = optuna.load_study(study_name="fake-1d", storage=f"sqlite:///{tmp_path}/studies/fake-1d.db")
    assert study.user_attrs["device_seconds_spent"] == pytest.approx(
        sum(r.result.device_seconds for r in after.values()))  # nothing charged twice
    assert [s["finished"] for s in study.user_attrs["sessions"]] == [True]
    assert not any(r.state == TrialState.RUNNING for r in after.values())
