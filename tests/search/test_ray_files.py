"""Where a local search's Ray files go: under the study's `ray/` folder, through a private
folder in the system temp folder when that path is too long for Ray's sockets; once Ray has
stopped, however the search ended, the study's `ray/` folder (mode 0700) holds the logs of the
last Ray session only, and nothing of the search is left in the system temp folder.

The system temp folder is a fresh one of each test's own (TMPDIR, which Ray and `tempfile`
both follow), so "nothing left there" is checked exactly. One test starts a real Ray (a few
seconds); the others build the folders Ray would leave.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orca_automl.config import OrcaConfig, Stage
from orca_automl.search import ExecutionPlan, TrialRequest
from orca_automl.search._executor import ray_execution
from orca_automl.search._ray_files import (
    SESSION_LATEST,
    clear_leftovers,
    keep_last_session,
    ray_temp_dir,
    show_session,
)
from tests.search.fakes import FakeRunner, FakeTask

OLD = "session_2026-01-01_00-00-00_000001_1"
NEW = "session_2026-01-02_00-00-00_000001_2"


@pytest.fixture
def system_temp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty system temp folder for the test (short: Ray's sockets may live there)."""
    fresh = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(fresh))
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    try:
        yield fresh
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _check_kept(folder: Path, session: str) -> None:
    """`folder` holds `session`'s logs, linked as session_latest, and nothing else, closed to
    other users."""
    assert sorted(p.name for p in folder.iterdir()) == sorted([session, SESSION_LATEST])
    assert [p.name for p in (folder / session).iterdir()] == ["logs"]
    assert os.readlink(folder / SESSION_LATEST) == session  # relative: the study may move
    assert (folder / SESSION_LATEST / "logs").is_dir()
    assert {_mode(p) for p in (folder, *folder.rglob("*")) if p.is_dir() and not p.is_symlink()} \
        == {0o700}


@pytest.mark.integration
def test_a_local_ray_with_a_long_study_path_leaves_only_its_logs_in_the_study(
    tmp_path: Path, system_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # a local start never joins what it names
    folder = tmp_path / ("a-study-whose-folder-path-is-too-long-for-ray-sockets" * 2) / "ray"
    plan = ExecutionPlan(workers=1, gpus_per_trial=0.0, device_share=1.0, address=None,
                         temp_dir=folder)
    with pytest.raises(KeyboardInterrupt), \
            ray_execution(plan, FakeRunner(real_sleep=0.0), FakeTask()) as executor:
        executor.submit(TrialRequest(0, Stage.SHORT, OrcaConfig()))
        outcomes = []
        while not outcomes:
            outcomes = executor.wait(60)
        assert outcomes[0].result.error is None
        # while Ray runs: its files are in a private folder of the system temp folder, and
        # the study's folder links to the live session
        (scratch,) = system_temp.iterdir()
        assert scratch.name.startswith("orca-ray-") and _mode(scratch) == 0o700
        assert _mode(scratch / "ray") == 0o700
        session = (folder / SESSION_LATEST).resolve()
        assert session.parent == scratch / "ray"
        assert (folder / session.name).resolve() == session  # by the name it will be kept by
        assert (folder / SESSION_LATEST / "logs" / "raylet.out").is_file()
        assert _mode(folder) == 0o700 and not folder.is_symlink()
        raise KeyboardInterrupt  # Ctrl-C: the block ends as a search interrupted does

    assert list(system_temp.iterdir()) == []
    (session,) = [p.name for p in folder.iterdir() if p.name != SESSION_LATEST]
    assert session.startswith("session_")
    _check_kept(folder, session)
    logs = folder / session / "logs"
    assert (logs / "raylet.out").is_file() and (logs / "gcs_server.out").is_file()
    assert list(logs.glob("worker-*.out"))  # the trial's worker wrote there


def _ray_session(temp_dir: Path, name: str) -> Path:
    """A session folder as Ray leaves it in its temp folder (folders opened to everyone), with
    Ray's absolute session_latest link to it."""
    session = temp_dir / name
    for sub in ("logs", "logs/old", "sockets", "runtime_resources/pip"):
        (session / sub).mkdir(parents=True, exist_ok=True)
    (session / "logs" / "raylet.out").write_text(name)
    (session / "gcs_server_port_ab12").write_text("6379")
    for path in (temp_dir, *[p for p in session.rglob("*") if p.is_dir()], session):
        path.chmod(0o777)
    latest = temp_dir / SESSION_LATEST
    latest.unlink(missing_ok=True)
    latest.symlink_to(session)
    return session


def test_ray_in_the_study_folder_keeps_the_new_sessions_logs_only(tmp_path: Path) -> None:
    folder = tmp_path / "ray"  # Ray's temp folder itself (a short path)
    _ray_session(folder, OLD)
    _ray_session(folder, NEW)
    (folder / "auth_token").write_text("0" * 64)  # anything else goes too
    keep_last_session(folder, folder, None)
    _check_kept(folder, NEW)
    assert (folder / NEW / "logs" / "raylet.out").read_text() == NEW


def test_ray_in_the_system_temp_folder_moves_its_logs_to_the_study(
    tmp_path: Path, system_temp: Path
) -> None:
    folder = tmp_path / ("long" * 20) / "ray"
    _ray_session(folder, OLD)  # an earlier run's, kept in the study
    temp_dir, scratch = ray_temp_dir(folder)
    assert scratch is not None and scratch.parent == system_temp and temp_dir.parent == scratch
    _ray_session(temp_dir, NEW)
    show_session(folder, temp_dir)  # Ray has started
    assert _mode(temp_dir) == 0o700
    for live in (SESSION_LATEST, NEW):  # the live logs, from the study
        assert (folder / live / "logs" / "raylet.out").read_text() == NEW
    keep_last_session(folder, temp_dir, scratch)
    _check_kept(folder, NEW)
    assert (folder / NEW / "logs" / "raylet.out").read_text() == NEW
    assert list(system_temp.iterdir()) == []


def test_a_run_whose_ray_never_started_keeps_the_last_sessions_logs(
    tmp_path: Path, system_temp: Path
) -> None:
    folder = tmp_path / ("long" * 20) / "ray"
    _ray_session(folder, OLD)
    temp_dir, scratch = ray_temp_dir(folder)
    keep_last_session(folder, temp_dir, scratch)
    _check_kept(folder, OLD)
    assert list(system_temp.iterdir()) == []


def test_logs_that_cannot_be_moved_are_given_up_and_the_temp_folder_still_goes(
    tmp_path: Path, system_temp: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / ("long" * 20) / "ray"
    temp_dir, scratch = ray_temp_dir(folder)
    _ray_session(temp_dir, NEW)

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "move", full_disk)
    with caplog.at_level(logging.WARNING):
        keep_last_session(folder, temp_dir, scratch)
    assert "Ray's logs of this run were not kept" in caplog.text
    assert "No space left on device" in caplog.text
    assert list(system_temp.iterdir()) == []


def test_a_killed_runs_temp_folder_goes_with_the_next_run(
    tmp_path: Path, system_temp: Path
) -> None:
    folder = tmp_path / ("long" * 20) / "ray"
    temp_dir, scratch = ray_temp_dir(folder)
    _ray_session(temp_dir, OLD)  # SIGKILLed: never cleared
    assert clear_leftovers(folder) == folder.resolve()
    assert list(system_temp.iterdir()) == []
    assert not (folder / SESSION_LATEST).exists()


def test_the_link_earlier_versions_made_in_place_of_the_folder_goes_with_its_target(
    tmp_path: Path, system_temp: Path
) -> None:
    old = Path(tempfile.mkdtemp(prefix="orca-ray-"))
    _ray_session(old, OLD)
    folder = tmp_path / "study" / "ray"
    folder.parent.mkdir()
    folder.symlink_to(old, target_is_directory=True)
    assert clear_leftovers(folder) == folder.resolve()
    assert not folder.exists() and not folder.is_symlink()
    assert list(system_temp.iterdir()) == []


def test_a_study_folder_named_like_a_temp_folder_of_ours_is_never_removed(
    system_temp: Path
) -> None:
    folder = system_temp / "orca-ray-my-project" / "ray"  # its session_latest points inside
    _ray_session(folder, OLD)
    assert clear_leftovers(folder) == folder
    assert (folder / SESSION_LATEST / "logs" / "raylet.out").is_file()
